package local

import (
	"path/filepath"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/providers/providertest"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "files", "a.conf")
	s := filepath.Join(dir, "files", "deep", "secret")
	cases := []providertest.Case{
		{
			Kind:    KindFile,
			Config:  config(map[string]string{"path": a, "content": "one\n"}),
			Update:  config(map[string]string{"path": a, "content": "two\n", "mode": "0600"}),
			Replace: config(map[string]string{"path": a + ".new", "content": "two\n"}),
		},
		{
			Kind:    KindFile,
			Config:  config(map[string]string{"path": s, "sensitive_content": "hush", "mode": "600"}),
			Update:  config(map[string]string{"path": s, "content": "loud"}),
			Replace: config(map[string]string{"path": s + "2", "sensitive_content": "hush"}),
		},
	}
	providertest.Run(t, func(t *testing.T) providers.Provider {
		return New(filepath.Join(t.TempDir(), "data"))
	}, cases)
}
