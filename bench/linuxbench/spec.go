package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/berthhq/berth/providers/linux/runtime"
)

// specCommand writes a runc bundle's config.json for the command in args,
// built by berth's runtime package exactly as berth builds a container's:
// the same namespaces (a new network namespace with only a loopback, as
// network_mode "none"), capabilities, masked paths, device rules and the
// hosts, hostname and resolv.conf files bound from etc.
func specCommand(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("spec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rootfs := fs.String("rootfs", "", "absolute path of the unpacked root filesystem")
	etc := fs.String("etc", "", "directory for the container's hosts, hostname and resolv.conf")
	id := fs.String("id", "bench", "container id (hostname and cgroup name)")
	parent := fs.String("cgroup-parent", "/berth-bench-runc", "cgroup under which the container's cgroup is made")
	out := fs.String("o", "", "where to write config.json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rootfs == "" || *etc == "" || *out == "" || fs.NArg() == 0 {
		return errors.New("need -rootfs, -etc, -o and a command")
	}
	root, err := filepath.Abs(*rootfs)
	if err != nil {
		return err
	}
	etcDir, err := filepath.Abs(*etc)
	if err != nil {
		return err
	}
	if err := runtime.WriteEtc(etcDir, *id, false, false); err != nil {
		return err
	}
	sp, err := runtime.OCISpec(runtime.Spec{
		ID:           *id,
		Rootfs:       root,
		Args:         fs.Args(),
		Env:          []string{"HOSTNAME=" + *id},
		CgroupParent: *parent,
		EtcDir:       etcDir,
	})
	if err != nil {
		return fmt.Errorf("build the spec: %w", err)
	}
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the spec: %w", err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the spec: %w", err)
	}
	return nil
}
