// Package local is berth's built-in provider "local", which manages files on
// the host (kind file).
//
// A file has a path (absolute and clean; a change replaces the file), its
// content given either as content or as sensitive_content (exactly one of
// the two; the second is never shown), a mode (octal permission bits,
// "0644" unless set) and two computed attributes: id, which is the path,
// and sha256, the hex SHA-256 digest of content (null when the content is
// sensitive, since the digest of a short secret can be brute-forced).
//
// Files are written atomically: into a temporary file in the same
// directory, synced, renamed into place, and the directory synced. Parent
// directories are created with mode 0755. The provider never follows a
// symbolic link at path: it opens files with O_NOFOLLOW, refuses to write,
// read or delete when path is a link (or anything but a regular file), and
// writes by renaming, which replaces a link instead of writing through it.
// Directories above path are followed as usual.
//
// Ownership: the provider keeps an index under its data directory that maps
// each owner token to the path it owns. The entry is written before the
// file is created, so that an interrupted create is found again (Read with
// an empty ID). A create refuses to replace an existing file that berth
// does not own; `berth import file.NAME PATH` adopts such a file. Content
// edited by hand shows as drift of content; a file removed by hand is an
// object that is gone.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Name is the provider's name.
const Name = "local"

// KindFile is the kind of the files that the provider manages.
const KindFile = "file"

// Attribute names.
const (
	attrPath      = "path"
	attrContent   = "content"
	attrSensitive = "sensitive_content"
	attrMode      = "mode"
	attrID        = "id"
	attrSHA256    = "sha256"
)

// defaultMode is the mode of a file whose configuration sets none.
const defaultMode = "0644"

// maxContent is the largest file that the provider reads or writes.
const maxContent = 64 << 20

// provider implements providers.Provider for files.
type provider struct {
	index index
	kind  *providers.Kind
	ty    cty.Type
}

// New returns the local provider. It keeps its ownership index under
// dataDir; berth passes "$BERTH_STATE_DIR/providers/local".
func New(dataDir string) providers.Provider {
	k := fileKind()
	return &provider{index: index{dir: filepath.Join(dataDir, "owners")}, kind: k, ty: k.Block.ImpliedType()}
}

func fileKind() *providers.Kind {
	return &providers.Kind{
		Description: "A file on the host, written atomically. berth never follows a symbolic link at path.",
		Importable:  true,
		Block: &providers.Block{Attributes: map[string]*providers.Attribute{
			attrPath: {Type: cty.String, Required: true, ForceNew: true,
				Description: "The absolute, clean path of the file. A change replaces the file."},
			attrContent: {Type: cty.String, Optional: true,
				Description: "The content of the file. Set this or sensitive_content."},
			attrSensitive: {Type: cty.String, Optional: true, Sensitive: true,
				Description: "The content of the file, never shown. Set this or content."},
			attrMode: {Type: cty.String, Optional: true, Computed: true,
				Description: `The permission bits in octal, "0644" unless set.`},
			attrID: {Type: cty.String, Computed: true,
				Description: "The path."},
			attrSHA256: {Type: cty.String, Computed: true,
				Description: "The hex SHA-256 digest of content; null when the content is sensitive."},
		}},
	}
}

// Schema describes the kind file.
func (p *provider) Schema(context.Context) providers.SchemaResponse {
	return providers.SchemaResponse{Name: Name, Kinds: map[string]*providers.Kind{KindFile: p.kind}}
}

func (p *provider) checkKind(kind string) providers.Diagnostics {
	if kind != KindFile {
		return providers.Errorf("the local provider has no kind %q; it manages file", kind)
	}
	return nil
}

// recovered turns a panic into an error diagnostic, so that a malformed
// request cannot bring the provider down.
func recovered(diags *providers.Diagnostics) {
	if r := recover(); r != nil {
		*diags = append(*diags, providers.Errorf("internal error in the local provider: %v", r)...)
	}
}

// conform returns v as a value of the file type, attributes missing from v
// taken as null.
func (p *provider) conform(v cty.Value, what string) (cty.Value, providers.Diagnostics) {
	if v == cty.NilVal {
		return cty.NullVal(p.ty), nil
	}
	if v.ContainsMarked() {
		v, _ = v.UnmarkDeep()
	}
	if v.Type().Equals(p.ty) {
		return v, nil
	}
	if !v.Type().IsObjectType() || v.IsNull() || !v.IsKnown() {
		c, err := convert.Convert(v, p.ty)
		if err != nil {
			return cty.NilVal, providers.Errorf("the %s of a file does not fit its schema: %s", what, err)
		}
		return c, nil
	}
	for name := range v.Type().AttributeTypes() {
		if !p.ty.HasAttribute(name) {
			return cty.NilVal, providers.Errorf("the %s of a file has an unsupported attribute %q", what, name)
		}
	}
	vals := map[string]cty.Value{}
	for name, aty := range p.ty.AttributeTypes() {
		if !v.Type().HasAttribute(name) {
			vals[name] = cty.NullVal(aty)
			continue
		}
		av, err := convert.Convert(v.GetAttr(name), aty)
		if err != nil {
			return cty.NilVal, providers.Errorf("the %s of a file: attribute %q: %s", what, name, err)
		}
		vals[name] = av
	}
	return cty.ObjectVal(vals), nil
}

// known returns the string value of attribute name of v, and whether it
// is known and not null.
func known(v cty.Value, name string) (string, bool) {
	a := v.GetAttr(name)
	if !a.IsKnown() || a.IsNull() {
		return "", false
	}
	return a.AsString(), true
}

// checkPath reports what is wrong with a path, with the fix.
func checkPath(path string) providers.Diagnostics {
	at := cty.GetAttrPath(attrPath)
	switch {
	case path == "":
		return providers.Diagnostics{{Severity: providers.Error, Path: at,
			Summary: "path is empty",
			Detail:  `Give the absolute path of the file, for example "/etc/myapp/app.conf".`}}
	case strings.ContainsRune(path, 0):
		return providers.Diagnostics{{Severity: providers.Error, Path: at,
			Summary: fmt.Sprintf("path %q contains a NUL byte", path),
			Detail:  "Remove it: no file name can hold one."}}
	case !filepath.IsAbs(path):
		return providers.Diagnostics{{Severity: providers.Error, Path: at,
			Summary: fmt.Sprintf("path %q is relative", path),
			Detail:  `Write the full path from the root, for example "/etc/myapp/app.conf": a relative path would depend on the directory berth runs in.`}}
	case filepath.Clean(path) != path:
		return providers.Diagnostics{{Severity: providers.Error, Path: at,
			Summary: fmt.Sprintf("path %q is not clean", path),
			Detail:  fmt.Sprintf(`Write it as %q: berth refuses ".." and "." parts and repeated or trailing slashes, so that each file has one name.`, filepath.Clean(path))}}
	case path == "/":
		return providers.Diagnostics{{Severity: providers.Error, Path: at,
			Summary: `path "/" is the root directory`,
			Detail:  "Give the path of a file."}}
	}
	return nil
}

// parseMode parses octal permission bits such as "0644" or "600".
func parseMode(s string) (os.FileMode, providers.Diagnostics) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || len(s) < 3 || len(s) > 4 || v > 0o777 {
		return 0, providers.AttributeErrorf(cty.GetAttrPath(attrMode),
			`mode %q is not valid: write the permission bits in octal, such as "0644" or "0600"`, s)
	}
	return os.FileMode(v), nil
}

func formatMode(m os.FileMode) string { return fmt.Sprintf("%04o", uint32(m.Perm())) }

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Validate checks the path, that exactly one of content and
// sensitive_content is set, and the mode.
func (p *provider) Validate(_ context.Context, req providers.ValidateRequest) (resp providers.ValidateResponse) {
	defer recovered(&resp.Diagnostics)
	if diags := p.checkKind(req.Kind); diags.HasErrors() {
		return providers.ValidateResponse{Diagnostics: diags}
	}
	cfg, diags := p.conform(req.Config, "configuration")
	if diags.HasErrors() {
		return providers.ValidateResponse{Diagnostics: diags}
	}
	if cfg.IsNull() || !cfg.IsKnown() {
		return providers.ValidateResponse{Diagnostics: providers.Errorf("the configuration of a file is missing")}
	}
	return providers.ValidateResponse{Diagnostics: validate(cfg)}
}

func validate(cfg cty.Value) providers.Diagnostics {
	var diags providers.Diagnostics
	if path, ok := known(cfg, attrPath); ok {
		diags = append(diags, checkPath(path)...)
	} else if a := cfg.GetAttr(attrPath); a.IsKnown() && a.IsNull() {
		diags = append(diags, checkPath("")...)
	}
	c, s := cfg.GetAttr(attrContent), cfg.GetAttr(attrSensitive)
	switch {
	case c.IsKnown() && s.IsKnown() && !c.IsNull() && !s.IsNull():
		diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath(attrSensitive),
			"both content and sensitive_content are set; keep only one of them")...)
	case c.IsKnown() && s.IsKnown() && c.IsNull() && s.IsNull():
		diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath(attrContent),
			`neither content nor sensitive_content is set; set one of them (content = "" for an empty file)`)...)
	}
	for _, v := range []cty.Value{c, s} {
		if v.IsKnown() && !v.IsNull() && len(v.AsString()) > maxContent {
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath(attrContent),
				"the content is %d bytes, more than the %d that berth manages; ship large files another way", len(v.AsString()), maxContent)...)
		}
	}
	if m, ok := known(cfg, attrMode); ok {
		_, d := parseMode(m)
		diags = append(diags, d...)
	}
	return diags
}

// Plan computes the planned state; it touches nothing.
func (p *provider) Plan(_ context.Context, req providers.PlanRequest) (resp providers.PlanResponse) {
	defer recovered(&resp.Diagnostics)
	if diags := p.checkKind(req.Kind); diags.HasErrors() {
		return providers.PlanResponse{Diagnostics: diags}
	}
	cfg, diags := p.conform(req.Config, "configuration")
	if diags.HasErrors() {
		return providers.PlanResponse{Diagnostics: diags}
	}
	prior, diags := p.conform(req.Prior, "prior state")
	if diags.HasErrors() {
		return providers.PlanResponse{Diagnostics: diags}
	}
	if cfg.IsNull() {
		return providers.PlanResponse{Planned: cty.NullVal(p.ty)}
	}
	if !cfg.IsKnown() || !prior.IsKnown() {
		return providers.PlanResponse{Diagnostics: providers.Errorf("cannot plan a file whose whole configuration or prior state is unknown")}
	}
	if diags := validate(cfg); diags.HasErrors() {
		return providers.PlanResponse{Diagnostics: diags}
	}
	vals := map[string]cty.Value{
		attrPath:      cfg.GetAttr(attrPath),
		attrContent:   cfg.GetAttr(attrContent),
		attrSensitive: cfg.GetAttr(attrSensitive),
		attrID:        cfg.GetAttr(attrPath),
	}
	switch m := cfg.GetAttr(attrMode); {
	case !m.IsKnown():
		vals[attrMode] = m
	case m.IsNull():
		vals[attrMode] = cty.StringVal(defaultMode)
	default:
		mode, _ := parseMode(m.AsString())
		vals[attrMode] = cty.StringVal(formatMode(mode))
	}
	switch c := cfg.GetAttr(attrContent); {
	case !c.IsKnown():
		vals[attrSHA256] = cty.UnknownVal(cty.String)
	case c.IsNull():
		vals[attrSHA256] = cty.NullVal(cty.String)
	default:
		vals[attrSHA256] = cty.StringVal(digest([]byte(c.AsString())))
	}
	var replace []cty.Path
	if !prior.IsNull() && !prior.GetAttr(attrPath).RawEquals(cfg.GetAttr(attrPath)) {
		replace = append(replace, cty.GetAttrPath(attrPath))
	}
	return providers.PlanResponse{Planned: cty.ObjectVal(vals), RequiresReplace: replace}
}

// state builds the state of the file at path holding data.
func (p *provider) state(path string, data []byte, mode os.FileMode, sensitive bool) cty.Value {
	vals := map[string]cty.Value{
		attrPath:      cty.StringVal(path),
		attrID:        cty.StringVal(path),
		attrMode:      cty.StringVal(formatMode(mode)),
		attrContent:   cty.NullVal(cty.String),
		attrSensitive: cty.NullVal(cty.String),
		attrSHA256:    cty.NullVal(cty.String),
	}
	if sensitive {
		vals[attrSensitive] = cty.StringVal(string(data))
	} else {
		vals[attrContent] = cty.StringVal(string(data))
		vals[attrSHA256] = cty.StringVal(digest(data))
	}
	return cty.ObjectVal(vals)
}

// notRegular explains that berth leaves what is at path alone.
func notRegular(op, path string) providers.Diagnostics {
	return providers.Errorf("%s %s: it is a symbolic link or not a regular file, and berth never follows links nor touches what it did not write; remove it by hand (berth then writes the file) or change path", op, path)
}

// Read returns the file's live state, or a null state when it is gone.
func (p *provider) Read(_ context.Context, req providers.ReadRequest) (resp providers.ReadResponse) {
	defer recovered(&resp.Diagnostics)
	if diags := p.checkKind(req.Kind); diags.HasErrors() {
		return providers.ReadResponse{Diagnostics: diags}
	}
	e, owned, err := p.index.get(req.Owner.Token)
	if err != nil {
		return providers.ReadResponse{Diagnostics: providers.Errorf("read %s: %v", req.Owner.Address, err)}
	}
	path := req.ID
	if path == "" {
		if !owned {
			return providers.ReadResponse{State: cty.NullVal(p.ty)}
		}
		path = e.Path
	}
	if checkPath(path).HasErrors() {
		// berth never writes a file whose path is not absolute and
		// clean: there is no such object.
		return providers.ReadResponse{State: cty.NullVal(p.ty)}
	}
	fi, err := lstat(path)
	if err != nil {
		return providers.ReadResponse{Diagnostics: providers.Errorf("read %s: %v", path, err)}
	}
	if fi == nil {
		return providers.ReadResponse{State: cty.NullVal(p.ty)}
	}
	if !fi.Mode().IsRegular() {
		return providers.ReadResponse{Diagnostics: notRegular("read", path)}
	}
	data, mode, err := readRegular(path, maxContent)
	switch {
	case errors.Is(err, errNotRegular):
		return providers.ReadResponse{Diagnostics: notRegular("read", path)}
	case errors.Is(err, os.ErrNotExist):
		return providers.ReadResponse{State: cty.NullVal(p.ty)}
	case err != nil:
		return providers.ReadResponse{Diagnostics: providers.Errorf("read %s: %v", path, err)}
	}
	sensitive := owned && e.Path == path && e.Sensitive
	return providers.ReadResponse{ID: path, State: p.state(path, data, mode, sensitive)}
}

// importHint names the address to suggest in `berth import`.
func importHint(address string) string {
	if address == "" {
		return "file.NAME"
	}
	return address
}

// Apply creates (empty ID) or updates a file.
func (p *provider) Apply(_ context.Context, req providers.ApplyRequest) (resp providers.ApplyResponse) {
	defer recovered(&resp.Diagnostics)
	if diags := p.checkKind(req.Kind); diags.HasErrors() {
		return providers.ApplyResponse{Diagnostics: diags}
	}
	planned, diags := p.conform(req.Planned, "planned state")
	if diags.HasErrors() {
		return providers.ApplyResponse{Diagnostics: diags}
	}
	if planned.IsNull() || !planned.IsWhollyKnown() {
		return providers.ApplyResponse{Diagnostics: providers.Errorf("nothing to apply: the planned state is null or holds values known only after apply; plan again")}
	}
	if diags := validate(planned); diags.HasErrors() {
		return providers.ApplyResponse{Diagnostics: diags}
	}
	path, _ := known(planned, attrPath)
	content, sensitive := planned.GetAttr(attrContent), false
	if content.IsNull() {
		content, sensitive = planned.GetAttr(attrSensitive), true
	}
	data := []byte(content.AsString())
	mode := os.FileMode(0o644)
	if m, ok := known(planned, attrMode); ok {
		mode, _ = parseMode(m)
	}
	create := req.ID == ""
	if !create && req.ID != path {
		return providers.ApplyResponse{Diagnostics: providers.AttributeErrorf(cty.GetAttrPath(attrPath),
			"the path of %s cannot change in place (from %s to %s); plan again to replace the file", req.Owner.Address, req.ID, path)}
	}

	fi, err := lstat(path)
	if err != nil {
		return providers.ApplyResponse{Diagnostics: providers.Errorf("write %s: %v", path, err)}
	}
	if fi != nil && !fi.Mode().IsRegular() {
		return providers.ApplyResponse{Diagnostics: notRegular("write", path)}
	}
	token := req.Owner.Token
	noReplace := create
	if fi != nil {
		// Something is there already. On create, it is ours only when
		// this very owner marked it (an interrupted create); on update,
		// unless another owner adopted it since.
		claims, err := p.index.claims(path)
		if err != nil {
			return providers.ApplyResponse{Diagnostics: providers.Errorf("write %s: %v", path, err)}
		}
		mine := !create && (len(claims) == 0 || token == "")
		for _, c := range claims {
			if c.Token == token && token != "" {
				mine = true
			}
		}
		switch {
		case !mine && len(claims) > 0:
			return providers.ApplyResponse{Diagnostics: providers.AttributeErrorf(cty.GetAttrPath(attrPath),
				"write %s: the file is managed by berth as %s; give %s another path", path, claims[0].Address, importHint(req.Owner.Address))}
		case !mine:
			return providers.ApplyResponse{Diagnostics: p.existsDiag(path, req.Owner.Address)}
		}
		noReplace = false
	}
	if token != "" {
		// The mark comes first: a create interrupted after this point is
		// found again by its owner token.
		if err := p.index.put(entry{Token: token, Address: req.Owner.Address, Path: path, Sensitive: sensitive}); err != nil {
			return providers.ApplyResponse{Diagnostics: providers.Errorf("write %s: %v", path, err)}
		}
	}
	err = os.MkdirAll(filepath.Dir(path), 0o755)
	if err == nil {
		err = writeAtomic(path, data, mode, noReplace)
	}
	if err != nil {
		if create && token != "" {
			p.index.remove(token)
		}
		if errors.Is(err, errExists) {
			return providers.ApplyResponse{Diagnostics: p.existsDiag(path, req.Owner.Address)}
		}
		return providers.ApplyResponse{Diagnostics: providers.Errorf("write %s: %v", path, err)}
	}
	return providers.ApplyResponse{ID: path, State: p.state(path, data, mode, sensitive)}
}

func (p *provider) existsDiag(path, address string) providers.Diagnostics {
	return providers.Diagnostics{{
		Severity: providers.Error,
		Summary:  fmt.Sprintf("%s already exists and berth does not own it", path),
		Detail: fmt.Sprintf("berth does not overwrite files it did not create. To manage this file, adopt it with `berth import %s %s` (the next apply then writes the configured content), or remove it, or choose another path.",
			importHint(address), path),
		Path: cty.GetAttrPath(attrPath),
	}}
}

// Delete removes the file and its ownership mark. A file already gone is
// not an error.
func (p *provider) Delete(_ context.Context, req providers.DeleteRequest) (resp providers.DeleteResponse) {
	defer recovered(&resp.Diagnostics)
	if diags := p.checkKind(req.Kind); diags.HasErrors() {
		return providers.DeleteResponse{Diagnostics: diags}
	}
	path := req.ID
	if path == "" {
		e, ok, err := p.index.get(req.Owner.Token)
		if err != nil {
			return providers.DeleteResponse{Diagnostics: providers.Errorf("delete %s: %v", req.Owner.Address, err)}
		}
		if !ok {
			return providers.DeleteResponse{}
		}
		path = e.Path
	}
	if checkPath(path).HasErrors() {
		// Not a path that berth writes: there is nothing to delete, and
		// a relative path must never be resolved against the working
		// directory.
		return providers.DeleteResponse{}
	}
	fi, err := lstat(path)
	if err != nil {
		return providers.DeleteResponse{Diagnostics: providers.Errorf("delete %s: %v", path, err)}
	}
	if fi != nil {
		if !fi.Mode().IsRegular() {
			return providers.DeleteResponse{Diagnostics: notRegular("delete", path)}
		}
		claims, err := p.index.claims(path)
		if err != nil {
			return providers.DeleteResponse{Diagnostics: providers.Errorf("delete %s: %v", path, err)}
		}
		mine := len(claims) == 0 || req.Owner.Token == ""
		for _, c := range claims {
			if c.Token == req.Owner.Token {
				mine = true
			}
		}
		if !mine {
			return providers.DeleteResponse{Diagnostics: providers.Errorf(
				"delete %s: the file now belongs to %s, not to %s; berth leaves it alone", path, claims[0].Address, req.Owner.Address)}
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return providers.DeleteResponse{Diagnostics: providers.Errorf("delete %s: %v", path, err)}
		}
		syncDir(filepath.Dir(path))
	}
	if err := p.index.remove(req.Owner.Token); err != nil {
		return providers.DeleteResponse{Diagnostics: providers.Errorf("delete %s: %v", path, err)}
	}
	return providers.DeleteResponse{}
}

// Import adopts the existing file whose path is the request's ID.
func (p *provider) Import(_ context.Context, req providers.ImportRequest) (resp providers.ImportResponse) {
	defer recovered(&resp.Diagnostics)
	if diags := p.checkKind(req.Kind); diags.HasErrors() {
		return providers.ImportResponse{Diagnostics: diags}
	}
	path := req.ID
	if diags := checkPath(path); diags.HasErrors() {
		d := diags[0]
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: %s. %s", path, d.Summary, d.Detail)}
	}
	if req.Owner.Token == "" {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: no owner token to mark the file with", path)}
	}
	fi, err := lstat(path)
	if err != nil {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: %v", path, err)}
	}
	if fi == nil {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: there is no file at that path; check it", path)}
	}
	if !fi.Mode().IsRegular() {
		return providers.ImportResponse{Diagnostics: notRegular("import", path)}
	}
	data, mode, err := readRegular(path, maxContent)
	if errors.Is(err, errNotRegular) {
		return providers.ImportResponse{Diagnostics: notRegular("import", path)}
	}
	if err != nil {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: %v", path, err)}
	}
	// Adoption moves ownership: the inventory, checked by the caller, is
	// the authority on who owns what, so older marks for the path go.
	claims, err := p.index.claims(path)
	if err != nil {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: %v", path, err)}
	}
	for _, c := range claims {
		if c.Token != req.Owner.Token {
			if err := p.index.remove(c.Token); err != nil {
				return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: %v", path, err)}
			}
		}
	}
	if err := p.index.put(entry{Token: req.Owner.Token, Address: req.Owner.Address, Path: path}); err != nil {
		return providers.ImportResponse{Diagnostics: providers.Errorf("import %s: %v", path, err)}
	}
	return providers.ImportResponse{ID: path, State: p.state(path, data, mode, false)}
}
