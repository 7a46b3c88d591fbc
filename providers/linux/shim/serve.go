package shim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/berthhq/berth/providers/linux/rootfs"
)

// Serve is the whole life of a shim process for the container directory
// dir, which sits at <root>/containers/<id> of the linux provider's data:
// it opens the layer store at <root>/rootfs, supervises the container and
// returns when the shim is done with it. The launcher passes the ready
// pipe as file descriptor 3; a shim that cannot even open its layer store
// reports that there.
func Serve(ctx context.Context, dir string) error {
	ready := os.NewFile(3, "ready")
	root := filepath.Dir(filepath.Dir(filepath.Clean(dir)))
	layers, err := rootfs.Open(filepath.Join(root, "rootfs"))
	if err != nil {
		if ready != nil {
			b, _ := json.Marshal(readyMsg{Error: err.Error()})
			_, _ = ready.Write(append(b, '\n'))
			ready.Close()
		}
		return err
	}
	return Run(ctx, Dir(dir), Options{
		Ready: ready,
		Mount: func(ctx context.Context, r *Record) error {
			_, err := layers.Mount(ctx, r.ID, r.Lowers)
			return err
		},
	})
}
