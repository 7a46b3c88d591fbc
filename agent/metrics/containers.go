package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Container is one container's figures, as its cgroups and network
// namespace give them.
type Container struct {
	// Address is the container's resource address ("container.web[0]");
	// ID and Image identify it further.
	Address, ID, Image string
	// Running reports whether the container runs; the figures below are
	// exported only for running containers.
	Running bool
	// CPUSeconds is the CPU time used, cumulative.
	CPUSeconds float64
	// MemoryUsage and MemoryLimit are in bytes; a limit of 0 means none.
	MemoryUsage, MemoryLimit uint64
	Pids                     uint64
	// NetRx, NetTx, BlockRead and BlockWrite are cumulative byte counts.
	NetRx, NetTx          uint64
	BlockRead, BlockWrite uint64
	// Restarts counts the restarts of the container by its shim.
	Restarts int
}

// ContainerSource lists the containers of the host with their figures.
type ContainerSource interface {
	Containers(ctx context.Context) ([]Container, error)
}

// scrapeTimeout bounds the time a scrape waits for the container source.
const scrapeTimeout = 5 * time.Second

// containerCollector exports the figures of the containers that its
// source lists at every scrape.
type containerCollector struct {
	src     ContainerSource
	timeout time.Duration

	up, cpu, memUsage, memLimit, pids, rx, tx, blkRead, blkWrite, restarts *prometheus.Desc

	mu       sync.Mutex
	inflight *call // the source call under way, shared by concurrent scrapes
}

// call is one call of the container source.
type call struct {
	done chan struct{}
	cs   []Container
	err  error
}

func newContainerCollector(src ContainerSource, timeout time.Duration) *containerCollector {
	labels := []string{"address", "id", "image"}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &containerCollector{
		src:      src,
		timeout:  timeout,
		up:       desc("berth_container_up", "Whether the container runs (1) or not (0)."),
		cpu:      desc("berth_container_cpu_usage_seconds_total", "CPU time the container used."),
		memUsage: desc("berth_container_memory_usage_bytes", "Memory the container uses."),
		memLimit: desc("berth_container_memory_limit_bytes", "Memory limit of the container; 0 means none."),
		pids:     desc("berth_container_pids", "Processes and threads in the container."),
		rx:       desc("berth_container_network_receive_bytes_total", "Bytes the container received, on every interface but lo."),
		tx:       desc("berth_container_network_transmit_bytes_total", "Bytes the container sent, on every interface but lo."),
		blkRead:  desc("berth_container_blkio_read_bytes_total", "Bytes the container read from block devices."),
		blkWrite: desc("berth_container_blkio_write_bytes_total", "Bytes the container wrote to block devices."),
		restarts: desc("berth_container_restarts_total", "Restarts of the container by its shim."),
	}
}

// Describe implements prometheus.Collector.
func (c *containerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.cpu, c.memUsage, c.memLimit, c.pids, c.rx, c.tx, c.blkRead, c.blkWrite, c.restarts} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *containerCollector) Collect(ch chan<- prometheus.Metric) {
	cs, err := c.containers()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.up, fmt.Errorf("container metrics: %w", err))
		return
	}
	seen := map[[3]string]bool{}
	for _, k := range cs {
		labels := [3]string{k.Address, k.ID, k.Image}
		if seen[labels] {
			continue
		}
		seen[labels] = true
		lv := labels[:]
		metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
			ch <- prometheus.MustNewConstMetric(d, t, v, lv...)
		}
		up := 0.0
		if k.Running {
			up = 1
		}
		metric(c.up, prometheus.GaugeValue, up)
		metric(c.restarts, prometheus.CounterValue, float64(max(k.Restarts, 0)))
		if !k.Running {
			continue
		}
		metric(c.cpu, prometheus.CounterValue, k.CPUSeconds)
		metric(c.memUsage, prometheus.GaugeValue, float64(k.MemoryUsage))
		metric(c.memLimit, prometheus.GaugeValue, float64(k.MemoryLimit))
		metric(c.pids, prometheus.GaugeValue, float64(k.Pids))
		metric(c.rx, prometheus.CounterValue, float64(k.NetRx))
		metric(c.tx, prometheus.CounterValue, float64(k.NetTx))
		metric(c.blkRead, prometheus.CounterValue, float64(k.BlockRead))
		metric(c.blkWrite, prometheus.CounterValue, float64(k.BlockWrite))
	}
}

// containers calls the source, waiting at most the timeout even when the
// source ignores its context. Scrapes that come while a call is under way
// wait for that call rather than start another, so that a stuck source
// costs one goroutine, not one per scrape.
func (c *containerCollector) containers() ([]Container, error) {
	c.mu.Lock()
	cl := c.inflight
	if cl == nil {
		cl = &call{done: make(chan struct{})}
		c.inflight = cl
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			cl.cs, cl.err = c.src.Containers(ctx)
			c.mu.Lock()
			c.inflight = nil
			c.mu.Unlock()
			close(cl.done)
		}()
	}
	c.mu.Unlock()
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-cl.done:
		return cl.cs, cl.err
	case <-t.C:
		return nil, fmt.Errorf("no answer from the container source in %s", c.timeout)
	}
}
