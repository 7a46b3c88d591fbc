package linux

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthhq/berth/providers/linux/jsonfile"
	"github.com/berthhq/berth/providers/linux/rootfs"
	"github.com/berthhq/berth/providers/linux/shim"
)

// Find returns the container whose address is ref (container.web,
// container.web[0]), or whose name or ID starts with ref.
func (h *Host) Find(ref string) (*shim.Record, error) {
	recs, err := h.Containers()
	if err != nil {
		return nil, err
	}
	var found []*shim.Record
	for _, r := range recs {
		if r.Address == ref || r.ID == ref || r.Spec.Hostname == ref {
			return r, nil
		}
		if len(ref) >= 4 && strings.HasPrefix(r.ID, ref) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("no container %q on this host; berth ps lists them", ref)
	}
	return nil, fmt.Errorf("%q matches %d containers; give more of the ID or the address", ref, len(found))
}

// Status is what `berth ps` shows of a container.
type Status struct {
	Record *shim.Record
	// State is "running", "restarting", "exited", "stopped", "created" or
	// "running (unsupervised)" when its shim is gone.
	State    string
	Health   string
	Restarts int
	Started  time.Time
	ExitCode *int
	Pid      int
}

// Statuses returns the status of every container, sorted by address.
func (h *Host) Statuses() ([]Status, error) {
	recs, err := h.Containers()
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(recs))
	for _, r := range recs {
		out = append(out, h.StatusOf(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Record.Address < out[j].Record.Address })
	return out, nil
}

// StatusOf reads the status of one container.
func (h *Host) StatusOf(r *shim.Record) Status {
	d := shim.Dir(h.ContainerDir(r.ID))
	st, _ := d.State()
	rst, _ := h.Runtime.Status(r.ID)
	s := Status{Record: r, Health: st.Health, Restarts: st.Restarts, ExitCode: st.ExitCode, Started: st.StartedAt}
	alive := shim.ShimAlive(st)
	switch {
	case rst.Running && alive:
		s.State, s.Pid = "running", rst.Pid
	case rst.Running:
		s.State, s.Pid = "running (unsupervised)", rst.Pid
	case alive && st.Status == shim.StatusRestarting:
		s.State = "restarting"
	case alive:
		s.State = st.Status
	case st.Status == "":
		s.State = "created"
	case st.Status == shim.StatusStopped:
		s.State = "stopped"
	default:
		s.State = "exited"
	}
	if s.State != "running" {
		s.Health = ""
	}
	return s
}

// Stop stops a container; byUser marks a stop by `berth stop`.
func (h *Host) Stop(ctx context.Context, r *shim.Record, byUser bool) error {
	sctx, cancel := context.WithTimeout(ctx, r.StopTimeout+15*time.Second)
	defer cancel()
	d := shim.Dir(h.ContainerDir(r.ID))
	if st, _ := d.State(); !shim.ShimAlive(st) {
		// No shim to stop it: the stop signal, a grace period, then the
		// kill that Destroy sends.
		if rs, err := h.Runtime.Status(r.ID); err == nil && rs.Running {
			if sig, err := shim.SignalNumber(r.StopSignal); err == nil {
				_ = h.Runtime.Signal(r.ID, sig)
			}
			for deadline := time.Now().Add(r.StopTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if rs, err := h.Runtime.Status(r.ID); err != nil || !rs.Running {
					break
				}
			}
		}
		return h.Runtime.Destroy(r.ID)
	}
	if err := shim.Stop(sctx, d, byUser); err != nil {
		return err
	}
	return h.Runtime.Destroy(r.ID)
}

// Start starts a stopped container under a new shim, run as exe args, or
// gives a running container whose shim died a new shim.
func (h *Host) Start(ctx context.Context, r *shim.Record, exe string, args []string) error {
	d := shim.Dir(h.ContainerDir(r.ID))
	if st, _ := d.State(); shim.ShimAlive(st) {
		return nil
	}
	// A container still running without its shim is adopted by the new
	// one; any other leftover is cleared by the new shim's start.
	lctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := shim.Launch(lctx, d, exe, args); err != nil && !errors.Is(err, shim.ErrSupervised) {
		msg := err.Error()
		if tail := strings.TrimSpace(d.LastLines(10)); tail != "" {
			msg += "\nlast log lines:\n" + tail
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// RootFS returns the root directory of a container as its processes see
// it, volumes included: /proc/PID/root while it runs, else its mounted
// root filesystem.
func (h *Host) RootFS(r *shim.Record) (string, error) {
	if st, err := h.Runtime.Status(r.ID); err == nil && st.Running && st.Pid > 0 {
		return fmt.Sprintf("/proc/%d/root", st.Pid), nil
	}
	return h.Layers.Mount(context.Background(), r.ID, r.Lowers)
}

// PruneLayers removes the unpacked layers that no image in the store and
// no container uses, and returns how many it removed.
func (h *Host) PruneLayers() (int, error) {
	keep := map[string]bool{}
	imgs, err := h.Content.Images()
	if err != nil {
		return 0, err
	}
	for _, img := range imgs {
		diffIDs := make([]string, len(img.Layers))
		for i, l := range img.Layers {
			diffIDs[i] = l.DiffID
		}
		ids, err := rootfs.ChainIDs(diffIDs)
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			keep[id] = true
		}
	}
	recs, err := h.Containers()
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		for _, l := range r.Lowers {
			keep[filepath.Base(l)] = true
		}
	}
	have, err := h.Layers.Layers()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range have {
		if keep[id] || keep[strings.TrimPrefix(id, "sha256:")] {
			continue
		}
		if err := h.Layers.RemoveLayer(id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Published returns the ports that container id publishes, as `berth ps`
// shows them ("127.0.0.1:49153->82/tcp"), and its address on its first
// network; both are empty for a container on no berth network.
func (h *Host) Published(id string) (ports []string, ip string) {
	var r netRecord
	if err := jsonfile.Read(filepath.Join(h.ContainerDir(id), netRecordFile), &r); err != nil {
		return nil, ""
	}
	for _, m := range r.Ports {
		ports = append(ports, m.String())
	}
	if len(r.Attachments) > 0 {
		ip = r.Attachments[0].Addr.Addr().String()
	}
	return ports, ip
}
