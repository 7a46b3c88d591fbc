package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthhq/berth/providers/linux"
	"github.com/berthhq/berth/providers/linux/content"
	"github.com/berthhq/berth/providers/linux/layer"
	"github.com/berthhq/berth/providers/linux/registry"
	"github.com/berthhq/berth/providers/linux/transfer"
)

// cmdImage dispatches the image subcommands.
func cmdImage(ctx context.Context, env *cliEnv, args []string) int {
	usage := "Usage: berth image ls | rm REF... | prune [-a] | save -o FILE REF... | load -i FILE | push REF"
	if len(args) == 0 {
		fmt.Fprintln(env.stderr, usage)
		return 1
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "ls", "list":
		return imageLs(env, rest)
	case "rm", "remove":
		return imageRm(env, rest)
	case "prune":
		return imagePrune(ctx, env, rest)
	case "save":
		return imageSave(ctx, env, rest)
	case "load":
		return imageLoad(ctx, env, rest)
	case "push":
		return imagePush(ctx, env, rest)
	}
	fmt.Fprintf(env.stderr, "berth image: unknown subcommand %q\n%s\n", sub, usage)
	return 1
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func imageLs(env *cliEnv, args []string) int {
	c := newHostCmd(env, "image ls", "image ls")
	if _, ok := c.parse(args, 0, 0); !ok {
		return 1
	}
	imgs, err := c.host.Content.Images()
	if err != nil {
		return c.fail(err)
	}
	used := usedImages(c.host)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE\tCREATED\tCONTAINERS")
	for _, img := range imgs {
		names := img.Names
		if len(names) == 0 {
			names = []string{"<none>"}
		}
		created := "-"
		if !img.Created.IsZero() {
			created = img.Created.UTC().Format(time.RFC3339)
		}
		for _, n := range names {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", n, shortDigest(img.Digest), humanBytes(uint64(img.Size)), created, used[img.Digest])
		}
	}
	tw.Flush()
	return 0
}

// usedImages counts the containers of each image digest.
func usedImages(h *linux.Host) map[string]int {
	out := map[string]int{}
	recs, _ := h.Containers()
	for _, r := range recs {
		out[r.ImageDigest]++
	}
	return out
}

func imageRm(env *cliEnv, args []string) int {
	c := newHostCmd(env, "image rm", "image rm REF...")
	pos, ok := c.parse(args, 1, -1)
	if !ok {
		return 1
	}
	used := usedImages(c.host)
	code := 0
	for _, ref := range pos {
		if err := removeImage(c.host, ref, used); err != nil {
			fmt.Fprintf(env.stderr, "Error: %s\n", err)
			code = 1
			continue
		}
		fmt.Fprintf(env.stdout, "Removed %s\n", ref)
	}
	return code
}

func removeImage(h *linux.Host, ref string, used map[string]int) error {
	name := ref
	if r, err := registry.ParseReference(ref); err == nil && !strings.HasPrefix(ref, "sha256:") {
		name = r.String()
	}
	img, err := h.Content.Image(name)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	byName := name != img.Digest
	if byName && len(img.Names) > 1 {
		return h.Content.Untag(name)
	}
	if n := used[img.Digest]; n > 0 {
		return fmt.Errorf("image %s is used by %d container(s); delete them first", ref, n)
	}
	if byName {
		if err := h.Content.Untag(name); err != nil {
			return err
		}
	}
	return h.Content.Remove(img.Digest)
}

func imagePrune(ctx context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "image prune", "image prune [-a]")
	all := c.fs.Bool("a", false, "also remove named images that no container uses")
	if _, ok := c.parse(args, 0, 0); !ok {
		return 1
	}
	used := usedImages(c.host)
	removed, freed, err := c.host.Content.Prune(ctx, func(img content.Image) bool {
		return used[img.Digest] > 0 || (!*all && len(img.Names) > 0)
	})
	if err != nil {
		return c.fail(err)
	}
	for _, img := range removed {
		fmt.Fprintf(env.stdout, "Deleted %s\n", img.Digest)
	}
	layers, err := c.host.PruneLayers()
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(env.stdout, "Removed %d image(s) and %d unpacked layer(s); reclaimed %s of content\n", len(removed), layers, humanBytes(uint64(freed)))
	return 0
}

func imageSave(ctx context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "image save", "image save -o FILE REF...")
	out := c.fs.String("o", "", "write the archive to FILE")
	pos, ok := c.parse(args, 1, -1)
	if !ok {
		return 1
	}
	if *out == "" {
		fmt.Fprintln(env.stderr, "Error: give the archive's path with -o FILE")
		return 1
	}
	names := make([]string, len(pos))
	for i, ref := range pos {
		names[i] = ref
		if r, err := registry.ParseReference(ref); err == nil {
			names[i] = r.String()
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".berth-save-*")
	if err != nil {
		return c.fail(err)
	}
	defer os.Remove(tmp.Name())
	err = c.host.Content.Save(ctx, tmp, names)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), *out)
	}
	if err != nil {
		return c.fail(err)
	}
	return 0
}

func imageLoad(ctx context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "image load", "image load -i FILE")
	in := c.fs.String("i", "", "read the archive from FILE (docker save or OCI layout tarball)")
	if _, ok := c.parse(args, 0, 0); !ok {
		return 1
	}
	var r io.Reader = env.stdin
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			return c.fail(err)
		}
		defer f.Close()
		r = f
	}
	imgs, err := c.host.Content.Load(ctx, r)
	if err != nil {
		return c.fail(err)
	}
	for _, img := range imgs {
		if len(img.Names) == 0 {
			fmt.Fprintf(env.stdout, "Loaded image %s\n", img.Digest)
		}
		for _, n := range img.Names {
			fmt.Fprintf(env.stdout, "Loaded image %s (%s)\n", n, shortDigest(img.Digest))
		}
	}
	return 0
}

func imagePush(ctx context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "image push", "image push [-from LOCAL] REF")
	from := c.fs.String("from", "", "push this local image under REF (default: REF itself)")
	pos, ok := c.parse(args, 1, 1)
	if !ok {
		return 1
	}
	ref, err := registry.ParseReference(pos[0])
	if err != nil {
		return c.fail(err)
	}
	src := ref.String()
	if *from != "" {
		src = *from
		if r, err := registry.ParseReference(*from); err == nil {
			src = r.String()
		}
	}
	img, err := c.host.Content.Image(src)
	if err != nil {
		return c.fail(fmt.Errorf("image %s: %w", src, err))
	}
	cli := registry.New(registry.Options{UserAgent: "berth"})
	if err := cli.Push(ctx, ref, c.host.Endpoint(ref.Registry()), c.host.Content, img); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(env.stdout, "Pushed %s (%s)\n", ref.String(), img.Digest)
	return 0
}

// cmdCp copies files between the host and a container: cp ADDR:PATH
// HOSTPATH or cp HOSTPATH ADDR:PATH.
func cmdCp(ctx context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "cp", "cp ADDR:PATH HOSTPATH | cp HOSTPATH ADDR:PATH")
	pos, ok := c.parse(args, 2, 2)
	if !ok {
		return 1
	}
	src, dst := pos[0], pos[1]
	sAddr, sPath, sIn := splitContainerPath(src)
	dAddr, dPath, dIn := splitContainerPath(dst)
	if sIn == dIn {
		fmt.Fprintln(env.stderr, "Error: exactly one of the two paths must be in a container: ADDR:PATH")
		return 1
	}
	ref := sAddr
	if dIn {
		ref = dAddr
	}
	rec, err := c.host.Find(ref)
	if err != nil {
		return c.fail(err)
	}
	root, err := c.host.RootFS(rec)
	if err != nil {
		return c.fail(err)
	}
	if dIn {
		err = transfer.CopyIn(ctx, root, dPath, src)
	} else {
		err = transfer.CopyOut(ctx, root, sPath, dst)
	}
	if err != nil {
		return c.fail(err)
	}
	return 0
}

// splitContainerPath splits "container.web:/etc/x" (or an ID) from a host
// path; host paths start with "/" or ".".
func splitContainerPath(s string) (ref, path string, ok bool) {
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
		return "", s, false
	}
	i := strings.Index(s, ":")
	if i <= 0 {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}

// cmdCommit makes an image from a container's changes.
func cmdCommit(ctx context.Context, env *cliEnv, args []string) int {
	c := newHostCmd(env, "commit", "commit ADDR REF")
	pos, ok := c.parse(args, 2, 2)
	if !ok {
		return 1
	}
	rec, err := c.host.Find(pos[0])
	if err != nil {
		return c.fail(err)
	}
	ref, err := registry.ParseReference(pos[1])
	if err != nil {
		return c.fail(err)
	}
	base, err := c.host.Content.Image(rec.ImageDigest)
	if err != nil {
		return c.fail(fmt.Errorf("the container's image %s: %w", rec.ImageDigest, err))
	}
	tmp, err := os.CreateTemp("", "berth-commit-*.tar")
	if err != nil {
		return c.fail(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	diffID, err := layer.Diff(ctx, tmp, c.host.Layers.Upper(rec.ID))
	if err != nil {
		return c.fail(err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return c.fail(err)
	}
	// The new image starts as the container did: its entrypoint and
	// command apart, as Docker's commit keeps them.
	changes := base.Config
	changes.Env = nil
	for _, kv := range rec.Spec.Env {
		if !strings.HasPrefix(kv, "HOSTNAME=") {
			changes.Env = append(changes.Env, kv)
		}
	}
	changes.Entrypoint, changes.Cmd = rec.Entrypoint, rec.Cmd
	if changes.Entrypoint == nil && changes.Cmd == nil {
		changes.Cmd = rec.Spec.Args // a container made before berth kept them apart
	}
	changes.WorkingDir = rec.Spec.Cwd
	changes.User = rec.Spec.User
	img, err := c.host.Content.Commit(ctx, base, tmp, diffID, changes, ref.String())
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(env.stdout, "%s %s\n", ref.String(), img.Digest)
	return 0
}
