package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

var ctx = context.Background()

func mustOK(t testing.TB, what string, diags providers.Diagnostics) {
	t.Helper()
	if diags.HasErrors() {
		t.Fatalf("%s: %v", what, diags.Err())
	}
}

func wantErr(t testing.TB, what string, diags providers.Diagnostics, want ...string) {
	t.Helper()
	if !diags.HasErrors() {
		t.Fatalf("%s: no error, want one about %q", what, want)
	}
	msg := diags.Err().Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not mention %q", what, msg, w)
		}
	}
}

// config builds a file configuration; attributes not given are null.
func config(attrs map[string]string) cty.Value {
	vals := map[string]cty.Value{}
	for _, n := range []string{attrPath, attrContent, attrSensitive, attrMode, attrID, attrSHA256} {
		vals[n] = cty.NullVal(cty.String)
		if v, ok := attrs[n]; ok {
			vals[n] = cty.StringVal(v)
		}
	}
	return cty.ObjectVal(vals)
}

func nullState() cty.Value { return cty.NullVal(fileKind().Block.ImpliedType()) }

func owner(address string) providers.Owner {
	return providers.Owner{Address: address, Token: "tok-" + address}
}

// create plans and applies cfg as a new file owned by address.
func create(t testing.TB, p providers.Provider, address string, cfg cty.Value) providers.ApplyResponse {
	t.Helper()
	pr := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: nullState(), Config: cfg})
	mustOK(t, "plan", pr.Diagnostics)
	ar := p.Apply(ctx, providers.ApplyRequest{Kind: KindFile, Owner: owner(address), Prior: nullState(), Planned: pr.Planned, Config: cfg})
	mustOK(t, "apply", ar.Diagnostics)
	return ar
}

// update plans and applies cfg over the file's prior state.
func update(t testing.TB, p providers.Provider, address string, prior, cfg cty.Value) providers.ApplyResponse {
	t.Helper()
	pr := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: prior, Config: cfg})
	mustOK(t, "plan", pr.Diagnostics)
	if len(pr.RequiresReplace) > 0 {
		t.Fatalf("update requires replace: %v", pr.RequiresReplace)
	}
	ar := p.Apply(ctx, providers.ApplyRequest{Kind: KindFile, ID: prior.GetAttr(attrID).AsString(), Owner: owner(address), Prior: prior, Planned: pr.Planned, Config: cfg})
	mustOK(t, "apply", ar.Diagnostics)
	return ar
}

func read(t testing.TB, p providers.Provider, id, address string) providers.ReadResponse {
	t.Helper()
	rr := p.Read(ctx, providers.ReadRequest{Kind: KindFile, ID: id, Owner: owner(address)})
	mustOK(t, "read", rr.Diagnostics)
	return rr
}

func TestSchema(t *testing.T) {
	resp := New(t.TempDir()).Schema(ctx)
	k := resp.Kinds[KindFile]
	if resp.Name != "local" || k == nil || !k.Importable {
		t.Fatalf("schema %+v", resp)
	}
	a := k.Block.Attributes
	checks := []struct {
		name string
		ok   bool
	}{
		{"path required force new", a[attrPath].Required && a[attrPath].ForceNew},
		{"content optional in place", a[attrContent].Optional && !a[attrContent].ForceNew && !a[attrContent].Sensitive},
		{"sensitive_content sensitive", a[attrSensitive].Optional && a[attrSensitive].Sensitive},
		{"mode optional computed", a[attrMode].Optional && a[attrMode].Computed},
		{"id computed", a[attrID].Computed && !a[attrID].Optional},
		{"sha256 computed", a[attrSHA256].Computed && !a[attrSHA256].Optional},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("schema: %s does not hold", c.name)
		}
	}
}

func TestValidate(t *testing.T) {
	p := New(t.TempDir())
	cases := []struct {
		attrs    map[string]string
		wantErr  []string // nil: valid
		wantPath string
	}{
		{attrs: map[string]string{"path": "/etc/app.conf", "content": "x"}},
		{attrs: map[string]string{"path": "/etc/app.conf", "content": ""}},
		{attrs: map[string]string{"path": "/etc/app.conf", "sensitive_content": "x", "mode": "0600"}},
		{attrs: map[string]string{"path": "/etc/app.conf", "content": "x", "mode": "600"}},
		{attrs: map[string]string{"path": "etc/app.conf", "content": "x"}, wantErr: []string{`"etc/app.conf" is relative`, "full path from the root"}, wantPath: "path"},
		{attrs: map[string]string{"path": "../app.conf", "content": "x"}, wantErr: []string{`"../app.conf" is relative`}, wantPath: "path"},
		{attrs: map[string]string{"path": "/etc/../app.conf", "content": "x"}, wantErr: []string{`"/etc/../app.conf" is not clean`, `Write it as "/app.conf"`}, wantPath: "path"},
		{attrs: map[string]string{"path": "/etc/./app.conf", "content": "x"}, wantErr: []string{`Write it as "/etc/app.conf"`}, wantPath: "path"},
		{attrs: map[string]string{"path": "/etc//app.conf", "content": "x"}, wantErr: []string{"not clean"}, wantPath: "path"},
		{attrs: map[string]string{"path": "/etc/app/", "content": "x"}, wantErr: []string{`Write it as "/etc/app"`}, wantPath: "path"},
		{attrs: map[string]string{"path": "/", "content": "x"}, wantErr: []string{"root directory"}, wantPath: "path"},
		{attrs: map[string]string{"path": "", "content": "x"}, wantErr: []string{"path is empty"}, wantPath: "path"},
		{attrs: map[string]string{"content": "x"}, wantErr: []string{"path is empty"}, wantPath: "path"},
		{attrs: map[string]string{"path": "/a\x00b", "content": "x"}, wantErr: []string{"NUL"}, wantPath: "path"},
		{attrs: map[string]string{"path": "/a", "content": "x", "sensitive_content": "y"}, wantErr: []string{"keep only one"}, wantPath: "sensitive_content"},
		{attrs: map[string]string{"path": "/a"}, wantErr: []string{"neither content nor sensitive_content"}, wantPath: "content"},
		{attrs: map[string]string{"path": "/a", "content": "x", "mode": "0999"}, wantErr: []string{`mode "0999"`}, wantPath: "mode"},
		{attrs: map[string]string{"path": "/a", "content": "x", "mode": "4755"}, wantErr: []string{"octal"}, wantPath: "mode"},
		{attrs: map[string]string{"path": "/a", "content": "x", "mode": "0o644"}, wantErr: []string{"octal"}, wantPath: "mode"},
		{attrs: map[string]string{"path": "/a", "content": "x", "mode": "64"}, wantErr: []string{"octal"}, wantPath: "mode"},
		{attrs: map[string]string{"path": "/a", "content": "x", "mode": "rw-r--r--"}, wantErr: []string{"octal"}, wantPath: "mode"},
	}
	for _, c := range cases {
		t.Run(c.attrs["path"]+"_"+c.attrs["mode"], func(t *testing.T) {
			diags := p.Validate(ctx, providers.ValidateRequest{Kind: KindFile, Config: config(c.attrs)}).Diagnostics
			if c.wantErr == nil {
				mustOK(t, "validate", diags)
				return
			}
			wantErr(t, "validate", diags, c.wantErr...)
			if len(diags) != 1 || len(diags[0].Path) != 1 || diags[0].Path[0].(cty.GetAttrStep).Name != c.wantPath {
				t.Errorf("diagnostics %+v, want one at %s", diags, c.wantPath)
			}
		})
	}
	// Unknown values pass; a wrong kind or shape is an error, not a panic.
	cfg := config(map[string]string{"mode": "0644"}).AsValueMap()
	cfg[attrPath] = cty.UnknownVal(cty.String)
	cfg[attrContent] = cty.UnknownVal(cty.String)
	mustOK(t, "validate unknown", p.Validate(ctx, providers.ValidateRequest{Kind: KindFile, Config: cty.ObjectVal(cfg)}).Diagnostics)
	for _, req := range []providers.ValidateRequest{
		{Kind: "dir", Config: config(nil)},
		{Kind: KindFile, Config: cty.StringVal("x")},
		{Kind: KindFile, Config: cty.ObjectVal(map[string]cty.Value{"owner": cty.StringVal("root")})},
		{Kind: KindFile, Config: cty.NullVal(cty.DynamicPseudoType)},
	} {
		if !p.Validate(ctx, req).Diagnostics.HasErrors() {
			t.Errorf("validate %#v: no error", req)
		}
	}
}

func TestPlan(t *testing.T) {
	dir := t.TempDir()
	p := New(filepath.Join(dir, "data"))
	path := filepath.Join(dir, "f.conf")
	prior := create(t, p, "file.f", config(map[string]string{"path": path, "content": "one"})).State

	unknownContent := config(map[string]string{"path": path}).AsValueMap()
	unknownContent[attrContent] = cty.UnknownVal(cty.String)
	cases := []struct {
		name    string
		prior   cty.Value
		cfg     cty.Value
		replace bool
		same    bool
		check   func(pl cty.Value) bool
	}{
		{name: "create: id is the path, default mode, digest",
			prior: nullState(), cfg: config(map[string]string{"path": "/x/y", "content": "hello"}),
			check: func(pl cty.Value) bool {
				return pl.GetAttr(attrID).AsString() == "/x/y" && pl.GetAttr(attrMode).AsString() == "0644" &&
					pl.GetAttr(attrSHA256).AsString() == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
			}},
		{name: "create sensitive: no digest",
			prior: nullState(), cfg: config(map[string]string{"path": "/x/y", "sensitive_content": "hello", "mode": "600"}),
			check: func(pl cty.Value) bool {
				return pl.GetAttr(attrSHA256).IsNull() && pl.GetAttr(attrMode).AsString() == "0600"
			}},
		{name: "unknown content: unknown digest",
			prior: nullState(), cfg: cty.ObjectVal(unknownContent),
			check: func(pl cty.Value) bool { return !pl.GetAttr(attrSHA256).IsKnown() }},
		{name: "no change", prior: prior, cfg: config(map[string]string{"path": path, "content": "one"}), same: true},
		{name: "explicit default mode is no change", prior: prior, cfg: config(map[string]string{"path": path, "content": "one", "mode": "644"}), same: true},
		{name: "content in place", prior: prior, cfg: config(map[string]string{"path": path, "content": "two"})},
		{name: "mode in place", prior: prior, cfg: config(map[string]string{"path": path, "content": "one", "mode": "0600"})},
		{name: "to sensitive in place", prior: prior, cfg: config(map[string]string{"path": path, "sensitive_content": "one"})},
		{name: "path replaces", prior: prior, cfg: config(map[string]string{"path": path + ".new", "content": "one"}), replace: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: c.prior, Config: c.cfg})
			mustOK(t, "plan", resp.Diagnostics)
			if (len(resp.RequiresReplace) > 0) != c.replace {
				t.Errorf("requires replace %v, want %v", resp.RequiresReplace, c.replace)
			}
			if !c.prior.IsNull() && resp.Planned.RawEquals(c.prior) != c.same {
				t.Errorf("planned == prior is %v, want %v\nplanned %#v\nprior %#v", !c.same, c.same, resp.Planned, c.prior)
			}
			if c.check != nil && !c.check(resp.Planned) {
				t.Errorf("planned %#v", resp.Planned)
			}
		})
	}
	// Plan writes nothing.
	if _, err := os.Stat("/x/y"); !os.IsNotExist(err) {
		t.Errorf("plan touched /x/y: %v", err)
	}
	// An invalid path is an error at plan time too.
	resp := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: nullState(), Config: config(map[string]string{"path": "rel", "content": "x"})})
	wantErr(t, "plan relative", resp.Diagnostics, `"rel" is relative`)
}

func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	p := New(data)
	path := filepath.Join(dir, "a", "b", "app.conf")
	cfg := config(map[string]string{"path": path, "content": "v=1\n", "mode": "0640"})
	old := syscall.Umask(0o077)
	ar := create(t, p, "file.app", cfg)
	syscall.Umask(old)
	if ar.ID != path {
		t.Errorf("id %q, want the path", ar.ID)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "v=1\n" {
		t.Fatalf("file holds %q, %v", b, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 whatever the umask", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di == nil || !di.IsDir() {
		t.Error("parent directories were not created")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("%d entries beside the file, want none (temporary files left?)", len(entries)-1)
	}

	rr := read(t, p, path, "file.app")
	if !rr.State.RawEquals(ar.State) {
		t.Fatalf("read %#v, want %#v", rr.State, ar.State)
	}
	pr := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: rr.State, Config: cfg})
	if !pr.Planned.RawEquals(rr.State) {
		t.Fatalf("plan of the applied configuration is not a no-op: %#v", pr.Planned)
	}

	// Drift: content and mode changed by hand.
	drifts := []struct {
		name  string
		do    func() error
		check func(st cty.Value) bool
	}{
		{"content", func() error { return os.WriteFile(path, []byte("v=2\n"), 0o640) },
			func(st cty.Value) bool { return st.GetAttr(attrContent).AsString() == "v=2\n" }},
		{"mode", func() error { return os.Chmod(path, 0o666) },
			func(st cty.Value) bool { return st.GetAttr(attrMode).AsString() == "0666" }},
	}
	for _, d := range drifts {
		if err := d.do(); err != nil {
			t.Fatal(err)
		}
		rr := read(t, p, path, "file.app")
		if !d.check(rr.State) {
			t.Fatalf("%s drift not seen: %#v", d.name, rr.State)
		}
		pr := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: rr.State, Config: cfg})
		if pr.Planned.RawEquals(rr.State) || len(pr.RequiresReplace) > 0 {
			t.Fatalf("%s drift: plan is not an update", d.name)
		}
		ur := update(t, p, "file.app", rr.State, cfg)
		if !ur.State.RawEquals(ar.State) {
			t.Fatalf("%s drift: after update %#v, want %#v", d.name, ur.State, ar.State)
		}
	}

	mustOK(t, "delete", p.Delete(ctx, providers.DeleteRequest{Kind: KindFile, ID: path, Owner: owner("file.app")}).Diagnostics)
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
	if _, ok, _ := (&index{dir: filepath.Join(data, "owners")}).get("tok-file.app"); ok {
		t.Error("the ownership mark outlived the file")
	}
	mustOK(t, "delete again", p.Delete(ctx, providers.DeleteRequest{Kind: KindFile, ID: path, Owner: owner("file.app")}).Diagnostics)
	if rr := read(t, p, path, "file.app"); !rr.State.IsNull() || rr.ID != "" {
		t.Errorf("read after delete: %q %#v", rr.ID, rr.State)
	}
}

func TestInvalidIDs(t *testing.T) {
	p := New(t.TempDir())
	for _, id := range []string{"relative", "/a/../b", "../../etc/passwd", "/"} {
		rr := p.Read(ctx, providers.ReadRequest{Kind: KindFile, ID: id})
		if rr.Diagnostics.HasErrors() || !rr.State.IsNull() {
			t.Errorf("read %q: %#v %v, want a null state", id, rr.State, rr.Diagnostics)
		}
		mustOK(t, "delete "+id, p.Delete(ctx, providers.DeleteRequest{Kind: KindFile, ID: id}).Diagnostics)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal(err)
	}
}

func TestOwnerLookup(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	p := New(data)
	path := filepath.Join(dir, "f")
	ar := create(t, p, "file.f", config(map[string]string{"path": path, "content": "x"}))

	cases := []struct {
		token  string
		wantID string
	}{
		{"tok-file.f", path},
		{"tok-file.other", ""},
		{"", ""},
	}
	for _, c := range cases {
		rr := p.Read(ctx, providers.ReadRequest{Kind: KindFile, Owner: providers.Owner{Token: c.token}})
		mustOK(t, "read", rr.Diagnostics)
		if rr.ID != c.wantID || rr.State.IsNull() != (c.wantID == "") {
			t.Errorf("token %q: id %q, want %q", c.token, rr.ID, c.wantID)
		}
	}

	// An interrupted create: the mark is written, the file is not.
	ix := &index{dir: filepath.Join(data, "owners")}
	path2 := filepath.Join(dir, "g")
	if err := ix.put(entry{Token: "tok-file.g", Address: "file.g", Path: path2}); err != nil {
		t.Fatal(err)
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: KindFile, Owner: owner("file.g")}); rr.Diagnostics.HasErrors() || !rr.State.IsNull() {
		t.Errorf("mark without file: %#v %v", rr.State, rr.Diagnostics)
	}
	// Interrupted after the rename: the file is found by the token, and a
	// retried create with the same owner may replace it.
	if err := os.WriteFile(path2, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: KindFile, Owner: owner("file.g")}); rr.ID != path2 {
		t.Errorf("interrupted create not found: %q %v", rr.ID, rr.Diagnostics)
	}
	create(t, p, "file.g", config(map[string]string{"path": path2, "content": "whole"}))
	if b, _ := os.ReadFile(path2); string(b) != "whole" {
		t.Errorf("retried create left %q", b)
	}
	_ = ar
}

func TestCreateRefusesFilesNotOwned(t *testing.T) {
	dir := t.TempDir()
	p := New(filepath.Join(dir, "data"))
	foreign := filepath.Join(dir, "foreign")
	if err := os.WriteFile(foreign, []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	owned := filepath.Join(dir, "owned")
	create(t, p, "file.first", config(map[string]string{"path": owned, "content": "mine"}))

	cases := []struct {
		path string
		want []string
	}{
		{foreign, []string{"already exists and berth does not own it", "berth import file.x " + foreign}},
		{owned, []string{"managed by berth as file.first"}},
	}
	for _, c := range cases {
		cfg := config(map[string]string{"path": c.path, "sensitive_content": "TOPSECRET"})
		pr := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: nullState(), Config: cfg})
		mustOK(t, "plan", pr.Diagnostics)
		ar := p.Apply(ctx, providers.ApplyRequest{Kind: KindFile, Owner: owner("file.x"), Prior: nullState(), Planned: pr.Planned, Config: cfg})
		wantErr(t, "create over "+c.path, ar.Diagnostics, c.want...)
		if strings.Contains(ar.Diagnostics.Err().Error(), "TOPSECRET") {
			t.Error("the error shows the sensitive content")
		}
		if ar.ID != "" {
			t.Errorf("a refused create returned ID %q", ar.ID)
		}
	}
	if b, _ := os.ReadFile(foreign); string(b) != "theirs" {
		t.Errorf("the foreign file was overwritten: %q", b)
	}
	if b, _ := os.ReadFile(owned); string(b) != "mine" {
		t.Errorf("the other resource's file was overwritten: %q", b)
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: KindFile, Owner: owner("file.x")}); !rr.State.IsNull() {
		t.Error("a refused create left an ownership mark")
	}
	// The hint without an address.
	if d := p.(*provider).existsDiag("/p", ""); !strings.Contains(d[0].Detail, "berth import file.NAME /p") {
		t.Errorf("hint %q", d[0].Detail)
	}
}

func TestImport(t *testing.T) {
	dir := t.TempDir()
	p := New(filepath.Join(dir, "data"))
	path := filepath.Join(dir, "existing.conf")
	if err := os.WriteFile(path, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id   string
		want []string // nil: success
	}{
		{"existing.conf", []string{"is relative", "full path"}},
		{dir + "/../x", []string{"not clean", "Write it as"}},
		{filepath.Join(dir, "missing"), []string{"no file at that path"}},
		{link, []string{"symbolic link"}},
		{dir, []string{"not a regular file"}},
		{path, nil},
	}
	for _, c := range cases {
		ir := p.Import(ctx, providers.ImportRequest{Kind: KindFile, ID: c.id, Owner: owner("file.e")})
		if c.want != nil {
			wantErr(t, "import "+c.id, ir.Diagnostics, c.want...)
			continue
		}
		mustOK(t, "import", ir.Diagnostics)
		if ir.ID != path || ir.State.GetAttr(attrContent).AsString() != "kept" || ir.State.GetAttr(attrMode).AsString() != "0600" {
			t.Errorf("import: %q %#v", ir.ID, ir.State)
		}
	}
	if rr := p.Read(ctx, providers.ReadRequest{Kind: KindFile, Owner: owner("file.e")}); rr.ID != path {
		t.Errorf("after import, read by owner: %q", rr.ID)
	}
	// The imported file can now be updated, and a second import moves
	// ownership.
	ir := p.Import(ctx, providers.ImportRequest{Kind: KindFile, ID: path, Owner: owner("file.moved")})
	mustOK(t, "re-import", ir.Diagnostics)
	dr := p.Delete(ctx, providers.DeleteRequest{Kind: KindFile, ID: path, Owner: owner("file.e")})
	wantErr(t, "delete by the former owner", dr.Diagnostics, "belongs to file.moved")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the file was deleted anyway: %v", err)
	}
}

func TestSymlinksAreNeverFollowed(t *testing.T) {
	dir := t.TempDir()
	p := New(filepath.Join(dir, "data"))
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T) {
		t.Helper()
		if b, _ := os.ReadFile(target); string(b) != "precious" {
			t.Fatalf("the link's target was changed: %q", b)
		}
	}

	// Create over a link (to a file, or dangling).
	for _, to := range []string{target, filepath.Join(dir, "nowhere")} {
		link := filepath.Join(dir, "link-"+filepath.Base(to))
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
		cfg := config(map[string]string{"path": link, "content": "evil"})
		pr := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: nullState(), Config: cfg})
		ar := p.Apply(ctx, providers.ApplyRequest{Kind: KindFile, Owner: owner("file.l"), Prior: nullState(), Planned: pr.Planned, Config: cfg})
		wantErr(t, "create over a link", ar.Diagnostics, "symbolic link", link)
		check(t)
		if _, err := os.Stat(filepath.Join(dir, "nowhere")); !os.IsNotExist(err) {
			t.Error("a dangling link was followed")
		}
	}

	// A managed file replaced by a link: read, update and delete refuse.
	path := filepath.Join(dir, "managed")
	cfg := config(map[string]string{"path": path, "content": "mine"})
	st := create(t, p, "file.m", cfg).State
	os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	rr := p.Read(ctx, providers.ReadRequest{Kind: KindFile, ID: path, Owner: owner("file.m")})
	wantErr(t, "read a link", rr.Diagnostics, "symbolic link")
	changed := config(map[string]string{"path": path, "content": "new"})
	pr := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: st, Config: changed})
	ar := p.Apply(ctx, providers.ApplyRequest{Kind: KindFile, ID: path, Owner: owner("file.m"), Prior: st, Planned: pr.Planned, Config: changed})
	wantErr(t, "update through a link", ar.Diagnostics, "symbolic link")
	check(t)
	dr := p.Delete(ctx, providers.DeleteRequest{Kind: KindFile, ID: path, Owner: owner("file.m")})
	wantErr(t, "delete a link", dr.Diagnostics, "symbolic link")
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was removed: %v", err)
	}
	check(t)

	// A directory at path is refused too.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	cfg = config(map[string]string{"path": sub, "content": "x"})
	pr = p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: nullState(), Config: cfg})
	ar = p.Apply(ctx, providers.ApplyRequest{Kind: KindFile, Owner: owner("file.d"), Prior: nullState(), Planned: pr.Planned, Config: cfg})
	wantErr(t, "create over a directory", ar.Diagnostics, "not a regular file")
}

func TestSensitiveContent(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	p := New(data)
	path := filepath.Join(dir, "secret")
	cfg := config(map[string]string{"path": path, "sensitive_content": "TOPSECRET", "mode": "0600"})
	ar := create(t, p, "file.s", cfg)
	rr := read(t, p, path, "file.s")
	if !rr.State.RawEquals(ar.State) {
		t.Fatalf("read %#v, want %#v", rr.State, ar.State)
	}
	if !rr.State.GetAttr(attrContent).IsNull() || !rr.State.GetAttr(attrSHA256).IsNull() || rr.State.GetAttr(attrSensitive).AsString() != "TOPSECRET" {
		t.Errorf("state %#v: want the content under sensitive_content only, no digest", rr.State)
	}
	if pr := p.Plan(ctx, providers.PlanRequest{Kind: KindFile, Prior: rr.State, Config: cfg}); !pr.Planned.RawEquals(rr.State) {
		t.Error("plan of a converged sensitive file is not a no-op")
	}
	// The data directory never holds the content.
	filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "TOPSECRET") {
				t.Errorf("%s holds the sensitive content", p)
			}
		}
		return nil
	})
	// Switching to content keeps the file and shows the content again.
	plain := config(map[string]string{"path": path, "content": "TOPSECRET", "mode": "0600"})
	update(t, p, "file.s", rr.State, plain)
	if rr := read(t, p, path, "file.s"); rr.State.GetAttr(attrContent).IsNull() {
		t.Error("after switching to content, read still reports sensitive_content")
	}
}
