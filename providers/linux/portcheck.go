package linux

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// checkPortFree reports an error when another process has bound the host
// port: nftables would send the port's new connections to the container
// while that process believes it serves them. The error names the port
// and, when it can be found, the process.
func checkPortFree(ip netip.Addr, port uint16, proto string) error {
	host := "0.0.0.0"
	if ip.IsValid() {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	var err error
	if proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			l.Close()
		}
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		// An address that is not this host's, say: the port cannot be
		// checked, and publishing it is still possible.
		return nil
	}
	who := ""
	if pid, name := portOwner(port, proto); pid > 0 {
		who = fmt.Sprintf(" (%s, pid %d)", name, pid)
	}
	return fmt.Errorf("host port %s/%s is already bound by another process%s: stop it or publish another host port", addr, proto, who)
}

// portOwner finds the process holding a socket bound to port, from
// /proc/net and the processes' file descriptors; 0 when not found.
func portOwner(port uint16, proto string) (int, string) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/" + proto, "/proc/net/" + proto + "6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && uint16(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0, ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && inodes[l] {
				pid, _ := strconv.Atoi(filepath.Base(dir))
				comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
				return pid, strings.TrimSpace(string(comm))
			}
		}
	}
	return 0, ""
}
