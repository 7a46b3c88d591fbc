package linux

import (
	"context"
	"os"
	"path/filepath"

	"github.com/berthhq/berth/providers/linux/shim"
)

// ServeShim is the shim of the container directory dir: the program runs
// it for the arguments that Options.ShimArgs gives. It returns when the
// shim is done with the container.
func ServeShim(dir string) error {
	root := filepath.Dir(filepath.Dir(filepath.Clean(dir)))
	h, err := OpenHost(root)
	ready := os.NewFile(3, "ready")
	if err != nil {
		if ready != nil {
			_, _ = ready.WriteString(`{"error":"` + jsonEscape(err.Error()) + `"}` + "\n")
			ready.Close()
		}
		return err
	}
	return shim.Run(context.Background(), shim.Dir(dir), shim.Options{
		Ready: ready,
		Mount: func(ctx context.Context, r *shim.Record) error {
			_, err := h.Layers.Mount(ctx, r.ID, r.Lowers)
			return err
		},
	})
}

func jsonEscape(s string) string {
	b := make([]byte, 0, len(s))
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}
