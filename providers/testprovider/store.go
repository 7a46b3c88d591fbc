package testprovider

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// object is one stored object.
type object struct {
	id    string
	kind  string
	owner providers.Owner
	state cty.Value
}

// store keeps objects.
type store interface {
	// get returns the object id; ok is false when there is none.
	get(id string, kinds map[string]*kindSpec) (o object, ok bool, err error)
	// byOwner returns the object marked with the owner token.
	byOwner(token string, kinds map[string]*kindSpec) (o object, ok bool, err error)
	put(o object) error
	// remove deletes the object id; a missing object is not an error.
	remove(id string) error
	newID(kind string) string
	// where names the store in messages.
	where() string
}

// fileStore keeps each object as a JSON file, <id>.json, in a directory.
type fileStore struct {
	dir string
}

// record is the content of an object file.
type record struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Owner      *ownerRecord    `json:"owner,omitempty"`
	Attributes json.RawMessage `json:"attributes"`
}

type ownerRecord struct {
	Address string `json:"address"`
	Token   string `json:"token"`
}

func (s *fileStore) where() string { return s.dir }

// validID reports whether id can name an object file.
func validID(id string) bool {
	if id == "" || id[0] == '.' || len(id) > 200 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

func (s *fileStore) path(id string) string { return filepath.Join(s.dir, id+".json") }

func (s *fileStore) get(id string, kinds map[string]*kindSpec) (object, bool, error) {
	if !validID(id) {
		// The provider never makes such an ID: there is no such object.
		return object{}, false, nil
	}
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return object{}, false, nil
	}
	if err != nil {
		return object{}, false, fmt.Errorf("read object %s: %w", id, err)
	}
	o, err := decodeRecord(id, b, kinds)
	if err != nil {
		return object{}, false, fmt.Errorf("object file %s: %w; fix the file or delete it", s.path(id), err)
	}
	return o, true, nil
}

func decodeRecord(id string, b []byte, kinds map[string]*kindSpec) (object, error) {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return object{}, err
	}
	k, ok := kinds[rec.Kind]
	if !ok {
		return object{}, fmt.Errorf("unknown kind %q", rec.Kind)
	}
	if len(rec.Attributes) == 0 {
		return object{}, fmt.Errorf("no attributes")
	}
	st, err := ctyjson.Unmarshal(rec.Attributes, k.ty)
	if err != nil {
		return object{}, fmt.Errorf("attributes: %w", err)
	}
	if st.IsNull() {
		return object{}, fmt.Errorf("attributes are null")
	}
	if k.ports {
		// A hand edit may drop the port list; blocks are never null.
		if p := st.GetAttr("port"); p.IsNull() {
			vals := st.AsValueMap()
			vals["port"] = cty.ListValEmpty(p.Type().ElementType())
			st = cty.ObjectVal(vals)
		}
	}
	o := object{id: id, kind: rec.Kind, state: st}
	if rec.Owner != nil {
		o.owner = providers.Owner{Address: rec.Owner.Address, Token: rec.Owner.Token}
	}
	return o, nil
}

func (s *fileStore) byOwner(token string, kinds map[string]*kindSpec) (object, bool, error) {
	if token == "" {
		return object{}, false, nil
	}
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return object{}, false, nil
	}
	if err != nil {
		return object{}, false, fmt.Errorf("list objects: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return object{}, false, fmt.Errorf("read object %s: %w", name, err)
		}
		var head struct {
			Owner *ownerRecord `json:"owner"`
		}
		if json.Unmarshal(b, &head) != nil || head.Owner == nil || head.Owner.Token != token {
			continue
		}
		id := strings.TrimSuffix(name, ".json")
		o, err := decodeRecord(id, b, kinds)
		if err != nil {
			return object{}, false, fmt.Errorf("object file %s: %w; fix the file or delete it", s.path(id), err)
		}
		return o, true, nil
	}
	return object{}, false, nil
}

func (s *fileStore) put(o object) error {
	attrs, err := ctyjson.Marshal(o.state, o.state.Type())
	if err != nil {
		return fmt.Errorf("encode object %s: %w", o.id, err)
	}
	rec := record{ID: o.id, Kind: o.kind, Attributes: attrs}
	if o.owner != (providers.Owner{}) {
		rec.Owner = &ownerRecord{Address: o.owner.Address, Token: o.owner.Token}
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode object %s: %w", o.id, err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("create the object directory: %w", err)
	}
	return writeAtomic(s.dir, s.path(o.id), b)
}

// writeAtomic writes b to path through a temporary file in dir (hidden,
// so that listings skip it), synced and renamed into place.
func writeAtomic(dir, path string, b []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (s *fileStore) remove(id string) error {
	if !validID(id) {
		return nil
	}
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete object %s: %w", id, err)
	}
	return nil
}

func (s *fileStore) newID(kind string) string {
	var b [8]byte
	rand.Read(b[:])
	return kind + "-" + hex.EncodeToString(b[:])
}

// memStore keeps objects in memory.
type memStore struct {
	mu      sync.RWMutex
	objects map[string]object
	owners  map[string]string // token → id
	next    int
}

func newMemStore() *memStore {
	return &memStore{objects: map[string]object{}, owners: map[string]string{}}
}

func (s *memStore) where() string { return "memory" }

func (s *memStore) get(id string, _ map[string]*kindSpec) (object, bool, error) {
	s.mu.RLock()
	o, ok := s.objects[id]
	s.mu.RUnlock()
	return o, ok, nil
}

func (s *memStore) byOwner(token string, _ map[string]*kindSpec) (object, bool, error) {
	if token == "" {
		return object{}, false, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.owners[token]
	if !ok {
		return object{}, false, nil
	}
	o, ok := s.objects[id]
	return o, ok, nil
}

func (s *memStore) put(o object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.objects[o.id]; ok && old.owner.Token != o.owner.Token {
		delete(s.owners, old.owner.Token)
	}
	s.objects[o.id] = o
	if o.owner.Token != "" {
		s.owners[o.owner.Token] = o.id
	}
	return nil
}

func (s *memStore) remove(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.objects[id]; ok {
		if s.owners[o.owner.Token] == id {
			delete(s.owners, o.owner.Token)
		}
		delete(s.objects, id)
	}
	return nil
}

func (s *memStore) newID(kind string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return kind + "-" + strconv.Itoa(s.next)
}
