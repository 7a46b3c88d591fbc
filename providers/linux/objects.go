package linux

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthhq/berth/providers/linux/ident"
	"github.com/berthhq/berth/providers/linux/jsonfile"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// objects remembers, per owner token, which object berth owns and the
// configuration it was last applied with. Read returns that configuration
// with the live values the kernel reports laid over it, and an interrupted
// create is found again by its token. Files are written before the object
// is created and removed after it is deleted.
type objects struct {
	dir string
}

// stored is one remembered object.
type stored struct {
	Kind    string          `json:"kind"`
	ID      string          `json:"id"`
	Address string          `json:"address"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// validToken reports whether s can be an object's token: 1 to 128
// letters, digits, '_', '.' and '-'.
func validToken(s string) bool { return ident.Valid(s, 128, "_.-", "_.-") }

func (o objects) path(token string) (string, error) {
	if !validToken(token) {
		return "", fmt.Errorf("invalid owner token %q", token)
	}
	return filepath.Join(o.dir, token+".json"), nil
}

// put remembers the object of token.
func (o objects) put(token string, s stored) error {
	p, err := o.path(token)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("remember object: %w", err)
	}
	// An object is often remembered twice with the same value, before and
	// after its side effects.
	return jsonfile.WriteChanged(p, s)
}

// get returns the object of token, or nil.
func (o objects) get(token string) (*stored, error) {
	p, err := o.path(token)
	if err != nil {
		return nil, err
	}
	var s stored
	if err := jsonfile.Read(p, &s); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return &s, nil
}

// remove forgets the object of token.
func (o objects) remove(token string) error {
	p, err := o.path(token)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget object: %w", err)
	}
	return nil
}

// all lists every remembered object.
func (o objects) all() (map[string]*stored, error) {
	ents, err := os.ReadDir(o.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]*stored{}
	for _, e := range ents {
		name := e.Name()
		if filepath.Ext(name) != ".json" {
			continue
		}
		var s stored
		if jsonfile.Read(filepath.Join(o.dir, name), &s) == nil {
			out[name[:len(name)-5]] = &s
		}
	}
	return out, nil
}

// encodeValue turns an applied value into JSON.
func encodeValue(v cty.Value) (json.RawMessage, error) {
	return ctyjson.Marshal(v, v.Type())
}

// decodeValue reads an applied value of type ty; a value stored with an
// older schema is refused, and the caller reads the object afresh.
func decodeValue(b json.RawMessage, ty cty.Type) (cty.Value, error) {
	if len(b) == 0 {
		return cty.NullVal(ty), nil
	}
	return ctyjson.Unmarshal(b, ty)
}
