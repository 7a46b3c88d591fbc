package reconciler

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/berthhq/berth/providers"
	"github.com/berthhq/berth/spec"
	"github.com/berthhq/berth/spec/addr"
	"github.com/berthhq/berth/spec/marks"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctymsgpack "github.com/zclconf/go-cty/cty/msgpack"
)

func errDiag(summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail}
}

// redactor replaces sensitive strings in messages that came from outside
// (providers), so that no secret reaches output through an error.
type redactor struct {
	mu      sync.RWMutex
	secrets map[string]bool
}

func newRedactor() *redactor { return &redactor{secrets: map[string]bool{}} }

// addValue remembers every sensitive string inside v.
func (r *redactor) addValue(v cty.Value) {
	if v == cty.NilVal {
		return
	}
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if x.HasMark(marks.Sensitive) {
			ux, _ := x.UnmarkDeep()
			r.addAll(ux)
			return false, nil
		}
		return true, nil
	})
}

func (r *redactor) addAll(v cty.Value) {
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if x.IsKnown() && !x.IsNull() && x.Type() == cty.String {
			if s := x.AsString(); len(s) >= 3 {
				r.mu.Lock()
				r.secrets[s] = true
				r.mu.Unlock()
			}
		}
		return true, nil
	})
}

// diags redacts the summary and detail of every diagnostic.
func (r *redactor) diags(ds hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range ds {
		d.Summary = r.redact(d.Summary)
		d.Detail = r.redact(d.Detail)
	}
	return ds
}

func (r *redactor) redact(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	secrets := make([]string, 0, len(r.secrets))
	for sec := range r.secrets {
		secrets = append(secrets, sec)
	}
	r.mu.RUnlock()
	if len(secrets) == 0 {
		return s
	}
	// Longest first, so that a secret containing another is hidden whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, sec := range secrets {
		pairs = append(pairs, sec, marks.Redacted)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// providerDiags turns a provider's diagnostics about an instance into hcl
// diagnostics, redacted.
func providerDiags(address, op string, ds providers.Diagnostics, red *redactor) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range ds {
		sev := hcl.DiagError
		if d.Severity == providers.Warning {
			sev = hcl.DiagWarning
		}
		summary := red.redact(d.Summary)
		out = append(out, &hcl.Diagnostic{
			Severity: sev,
			Summary:  fmt.Sprintf("%s: %s", address, summary),
			Detail:   red.redact(d.Detail),
		})
	}
	return out
}

// attrDiags is providerDiags with source ranges: a diagnostic about an
// attribute points at that attribute in the configuration.
func attrDiags(ia addr.Instance, op string, ds providers.Diagnostics, r *spec.Resource, red *redactor) hcl.Diagnostics {
	out := providerDiags(ia.String(), op, ds, red)
	for i, d := range ds {
		rng := r.DeclRange
		if body, ok := r.Body.(*hclsyntax.Body); ok && len(d.Path) > 0 {
			rng = pathRange(body, d.Path, rng)
		}
		out[i].Subject = rng.Ptr()
	}
	return out
}

// pathRange finds the source range of the attribute at path in body,
// going down nested blocks (mount[1].source); it gives the closest range it
// finds, or def.
func pathRange(body *hclsyntax.Body, path cty.Path, def hcl.Range) hcl.Range {
	ga, ok := path[0].(cty.GetAttrStep)
	if !ok {
		return def
	}
	if a, ok := body.Attributes[ga.Name]; ok {
		return a.Expr.Range()
	}
	var blocks []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == ga.Name {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) == 0 {
		return def
	}
	rest := path[1:]
	blk := blocks[0]
	if len(rest) > 0 {
		if ix, ok := rest[0].(cty.IndexStep); ok {
			rest = rest[1:]
			if ix.Key.Type() == cty.Number {
				n, _ := ix.Key.AsBigFloat().Int64()
				if n < 0 || int(n) >= len(blocks) {
					return blocks[0].DefRange()
				}
				blk = blocks[n]
			}
		}
	}
	if len(rest) == 0 {
		return blk.DefRange()
	}
	return pathRange(blk.Body, rest, blk.DefRange())
}

// hashValue returns a hash of an unmarked value, stable across runs.
func hashValue(v cty.Value) string {
	if v == cty.NilVal {
		return ""
	}
	// Values compared by hash are of one kind's schema type, so the type
	// need not be encoded; unknown values still encode distinctly.
	b, err := ctymsgpack.Marshal(v, v.Type())
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// fingerprint identifies the inputs of a plan: configuration files,
// variable values, host, targets, inventory and live state.
func (e *Engine) fingerprint(cfg *spec.Config, scope *spec.Scope, req PlanRequest, invFP string, live []*instanceState, items []*planned) string {
	h := hmac.New(sha256.New, e.opts.FingerprintKey)
	w := func(parts ...string) {
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s;", len(p), p)
		}
	}
	names := make([]string, 0, len(cfg.Files))
	for n := range cfg.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// Base names: the same directory may be named relatively when
		// planning and absolutely when applying a saved plan.
		w("file", filepath.Base(n), string(cfg.Files[n].Bytes))
	}
	vars := scope.Variables()
	for _, n := range slices.Sorted(maps.Keys(vars)) {
		v, _ := vars[n].UnmarkDeep()
		w("var", n, hashValue(v))
	}
	w("host", req.Inputs.Host.Name)
	for _, k := range slices.Sorted(maps.Keys(req.Inputs.Host.Labels)) {
		w("label", k, req.Inputs.Host.Labels[k])
	}
	for _, t := range req.Targets {
		w("target", t.String())
	}
	w("destroy", fmt.Sprint(req.Destroy))
	w("inventory", invFP)
	for _, is := range live {
		state := "gone"
		if !is.gone && is.live != cty.NilVal {
			state = hashValue(is.live)
		}
		w("live", is.entry.Token, is.id, state)
	}
	// The planned values themselves: what file() or templatefile() read, or
	// what a provider computed, is covered even when no .hcl file changed.
	changes := make([]string, 0, len(items))
	for _, it := range items {
		after, _ := it.change.After.UnmarkDeep()
		changes = append(changes, fmt.Sprintf("%s|%s|%v|%s", it.change.Addr, it.change.Action, it.change.Deposed, hashValue(after)))
	}
	sort.Strings(changes)
	for _, c := range changes {
		w("change", c)
	}
	w("providers", e.schemaHash)
	return hex.EncodeToString(h.Sum(nil))
}

// stateHash identifies a state and its private data, as seen by the
// providers of this engine: a changed provider schema plans afresh.
func (e *Engine) stateHash(state cty.Value, private []byte) string {
	vh := hashValue(state)
	if vh == "" {
		return ""
	}
	h := sha256.New()
	h.Write(private)
	h.Write([]byte(e.schemaHash))
	return vh + ":" + hex.EncodeToString(h.Sum(nil)[:8])
}
