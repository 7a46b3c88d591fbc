// Command netbench measures how fast berth publishes a container on a
// bridge network, against Docker, in the same run: from the exec of
// `berth apply` (or `docker run -d -p`) until the published port answers an
// HTTP request, for one new container on a bridge network with one
// published port. The contenders take turns. It runs inside the network
// namespace that bench/network made for it, next to a private dockerd.
//
//	netbench -berth BIN -config DIR -docker BIN -docker-host URL -image REF [-runs N]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "netbench: %v\n", err)
		os.Exit(1)
	}
}

// contender starts one container that answers on port, and removes it.
type contender struct {
	label string
	port  int
	start []string
	stop  []string
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("netbench", flag.ContinueOnError)
	berth := fs.String("berth", "", "the berth binary")
	config := fs.String("config", "", "the berth configuration: one container publishing port 18080")
	docker := fs.String("docker", "docker", "the docker client")
	dockerHost := fs.String("docker-host", "", "the private dockerd's address")
	image := fs.String("image", "", "the image Docker runs (the same busybox layer)")
	runs := fs.Int("runs", 15, "timed starts per contender")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *berth == "" || *config == "" || *dockerHost == "" || *image == "" {
		return fmt.Errorf("-berth, -config, -docker-host and -image are required")
	}
	cs := []contender{
		{
			label: "berth apply (bridge, -p 18080:80)",
			port:  18080,
			start: []string{*berth, "apply", "-auto-approve", *config},
			stop:  []string{*berth, "destroy", "-auto-approve", *config},
		},
		{
			label: "docker run -d -p 18081:80",
			port:  18081,
			start: []string{*docker, "-H", *dockerHost, "run", "-d", "--name", "netbench", "-p", "18081:80", *image, "httpd", "-f", "-p", "80", "-h", "/"},
			stop:  []string{*docker, "-H", *dockerHost, "rm", "-f", "netbench"},
		},
	}
	times := make([][]time.Duration, len(cs))
	// One untimed round warms caches for both.
	for round := -1; round < *runs; round++ {
		for i, c := range cs {
			d, err := once(c)
			if err != nil {
				return fmt.Errorf("%s: %w", c.label, err)
			}
			if round >= 0 {
				times[i] = append(times[i], d)
			}
		}
	}
	fmt.Fprintf(out, "\nstart one container on a bridge network with one published port, until the port answers (%d interleaved runs each)\n", *runs)
	fmt.Fprintf(out, "%-36s %10s %10s %10s %16s\n", "contender", "median", "p90", "min", "ratio to berth")
	base := median(times[0])
	for i, c := range cs {
		m := median(times[i])
		fmt.Fprintf(out, "%-36s %10s %10s %10s %15.2fx\n", c.label, ms(m), ms(pct(times[i], 0.9)), ms(pct(times[i], 0)), float64(m)/float64(base))
	}
	fmt.Fprintf(out, "target: docker / berth >= 3.00x; measured %.2fx\n", float64(median(times[1]))/float64(base))
	return nil
}

// once starts c, times it until its port answers, and removes it.
func once(c contender) (time.Duration, error) {
	t0 := time.Now()
	cmd := exec.Command(c.start[0], c.start[1:]...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%v: %s", err, b)
	}
	deadline := t0.Add(30 * time.Second)
	for !answers(c.port) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("port %d did not answer within 30s", c.port)
		}
		time.Sleep(200 * time.Microsecond)
	}
	d := time.Since(t0)
	stop := exec.Command(c.stop[0], c.stop[1:]...)
	stop.Env = cmd.Env
	if b, err := stop.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("remove: %v: %s", err, b)
	}
	return d, nil
}

// answers reports whether an HTTP request to 127.0.0.1:port gets a
// status line back.
func answers(port int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "HTTP/")
}

func median(ds []time.Duration) time.Duration { return pct(ds, 0.5) }

func pct(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
