package spec

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthhq/berth/spec/marks"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Functions returns the functions available in expressions. File functions
// resolve relative paths against baseDir, the configuration directory.
func Functions(baseDir string) map[string]function.Function {
	return functions(baseDir, false)
}

// ConfinedFunctions is Functions for a configuration from someone who
// may not read the host's files (a plan asked of an agent through its
// API): file functions read only under baseDir.
func ConfinedFunctions(baseDir string) map[string]function.Function {
	return functions(baseDir, true)
}

func functions(baseDir string, confine bool) map[string]function.Function {
	resolve := func(p string) (string, error) { return resolvePath(baseDir, p, confine) }
	fs := map[string]function.Function{
		"abs":             stdlib.AbsoluteFunc,
		"ceil":            stdlib.CeilFunc,
		"chomp":           stdlib.ChompFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"concat":          stdlib.ConcatFunc,
		"contains":        stdlib.ContainsFunc,
		"csvdecode":       stdlib.CSVDecodeFunc,
		"distinct":        stdlib.DistinctFunc,
		"element":         stdlib.ElementFunc,
		"flatten":         stdlib.FlattenFunc,
		"floor":           stdlib.FloorFunc,
		"format":          stdlib.FormatFunc,
		"formatdate":      stdlib.FormatDateFunc,
		"formatlist":      stdlib.FormatListFunc,
		"indent":          stdlib.IndentFunc,
		"index":           stdlib.IndexFunc,
		"join":            stdlib.JoinFunc,
		"jsondecode":      stdlib.JSONDecodeFunc,
		"jsonencode":      stdlib.JSONEncodeFunc,
		"keys":            stdlib.KeysFunc,
		"length":          stdlib.LengthFunc,
		"log":             stdlib.LogFunc,
		"lookup":          stdlib.LookupFunc,
		"lower":           stdlib.LowerFunc,
		"max":             stdlib.MaxFunc,
		"merge":           stdlib.MergeFunc,
		"min":             stdlib.MinFunc,
		"parseint":        stdlib.ParseIntFunc,
		"pow":             stdlib.PowFunc,
		"range":           stdlib.RangeFunc,
		"regex":           stdlib.RegexFunc,
		"regexall":        stdlib.RegexAllFunc,
		"replace":         stdlib.ReplaceFunc,
		"reverse":         stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setproduct":      stdlib.SetProductFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		"setunion":        stdlib.SetUnionFunc,
		"signum":          stdlib.SignumFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"split":           stdlib.SplitFunc,
		"strrev":          stdlib.ReverseFunc,
		"substr":          stdlib.SubstrFunc,
		"timeadd":         stdlib.TimeAddFunc,
		"title":           stdlib.TitleFunc,
		"trim":            stdlib.TrimFunc,
		"trimprefix":      stdlib.TrimPrefixFunc,
		"trimspace":       stdlib.TrimSpaceFunc,
		"trimsuffix":      stdlib.TrimSuffixFunc,
		"upper":           stdlib.UpperFunc,
		"values":          stdlib.ValuesFunc,
		"zipmap":          stdlib.ZipmapFunc,
		"tostring":        stdlib.MakeToFunc(cty.String),
		"tonumber":        stdlib.MakeToFunc(cty.Number),
		"tobool":          stdlib.MakeToFunc(cty.Bool),
		"tolist":          stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"toset":           stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tomap":           stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"try":             tryfunc.TryFunc,
		"can":             tryfunc.CanFunc,
		"base64encode":    base64EncodeFunc,
		"base64decode":    base64DecodeFunc,
		"md5":             hashFunc(func(b []byte) []byte { s := md5.Sum(b); return s[:] }),
		"sha1":            hashFunc(func(b []byte) []byte { s := sha1.Sum(b); return s[:] }),
		"sha256":          hashFunc(func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }),
		"sha512":          hashFunc(func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }),
		"cidrhost":        cidrHostFunc,
		"cidrnetmask":     cidrNetmaskFunc,
		"cidrsubnet":      cidrSubnetFunc,
		"sensitive":       sensitiveFunc,
		"nonsensitive":    nonsensitiveFunc,
		"basename":        pathFunc(filepath.Base),
		"dirname":         pathFunc(filepath.Dir),
		"startswith":      strPredFunc(strings.HasPrefix),
		"endswith":        strPredFunc(strings.HasSuffix),
		"strcontains":     strPredFunc(strings.Contains),
	}
	fs["file"] = fileFunc(resolve)
	fs["fileexists"] = fileExistsFunc(resolve)
	fs["abspath"] = absPathFunc(baseDir)
	fs["templatefile"] = templateFileFunc(resolve, fs)
	return fs
}

var base64EncodeFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.StringVal(base64.StdEncoding.EncodeToString([]byte(args[0].AsString()))), nil
	},
})

var base64DecodeFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		b, err := base64.StdEncoding.DecodeString(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.String), fmt.Errorf("invalid base64 data: %w", err)
		}
		return cty.StringVal(string(b)), nil
	},
})

func hashFunc(sum func([]byte) []byte) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "str", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(hex.EncodeToString(sum([]byte(args[0].AsString())))), nil
		},
	})
}

func pathFunc(f func(string) string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(f(args[0].AsString())), nil
		},
	})
}

func strPredFunc(f func(string, string) bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "sub", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(f(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

var sensitiveFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowMarked: true, AllowUnknown: true, AllowNull: true, AllowDynamicType: true}},
	Type: func(args []cty.Value) (cty.Type, error) {
		return args[0].Type(), nil
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return args[0].Mark(marks.Sensitive), nil
	},
})

var nonsensitiveFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowMarked: true, AllowUnknown: true, AllowNull: true, AllowDynamicType: true}},
	Type: func(args []cty.Value) (cty.Type, error) {
		return args[0].Type(), nil
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v, _ := args[0].Unmark()
		return v, nil
	},
})

// resolvePath resolves p against base. When confine is set, a path
// outside base, or one that goes through a symbolic link, is refused.
func resolvePath(base, p string, confine bool) (string, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	p = filepath.Clean(p)
	if !confine {
		return p, nil
	}
	root := filepath.Clean(base)
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%s is outside the configuration directory: this configuration may read its own files only", p)
	}
	for cur := root; rel != "."; {
		first, rest, _ := strings.Cut(rel, string(filepath.Separator))
		cur = filepath.Join(cur, first)
		if fi, err := os.Lstat(cur); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("%s goes through a symbolic link: this configuration may read its own files only", p)
		}
		if rest == "" {
			break
		}
		rel = rest
	}
	return p, nil
}

// pathResolver turns a path given to a file function into the path read.
type pathResolver func(p string) (string, error)

func fileFunc(resolve pathResolver) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p, err := resolve(args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot read file: %w", err)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

func fileExistsFunc(resolve pathResolver) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p, err := resolve(args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			st, err := os.Stat(p)
			return cty.BoolVal(err == nil && st.Mode().IsRegular()), nil
		},
	})
}

// absPathFunc turns a path relative to the configuration directory into
// an absolute one, for attributes that providers read from the host
// (an image archive, a bind source).
func absPathFunc(base string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(base, p)
			}
			abs, err := filepath.Abs(p)
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(abs), nil
		},
	})
}

func templateFileFunc(resolve pathResolver, funcs map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p, err := resolve(args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			src, err := os.ReadFile(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot read template: %w", err)
			}
			expr, diags := hclsyntax.ParseTemplate(src, p, hcl.Pos{Line: 1, Column: 1, Byte: 0})
			if diags.HasErrors() {
				return cty.NilVal, fmt.Errorf("template %s: %s", p, diags.Error())
			}
			vars := map[string]cty.Value{}
			if v := args[1]; !v.IsNull() {
				if !v.Type().IsObjectType() && !v.Type().IsMapType() {
					return cty.NilVal, fmt.Errorf("template variables must be an object or a map")
				}
				for it := v.ElementIterator(); it.Next(); {
					k, ev := it.Element()
					vars[k.AsString()] = ev
				}
			}
			// templatefile cannot call itself recursively.
			inner := make(map[string]function.Function, len(funcs))
			for k, f := range funcs {
				if k != "templatefile" {
					inner[k] = f
				}
			}
			v, diags := expr.Value(&hcl.EvalContext{Variables: vars, Functions: inner})
			if diags.HasErrors() {
				return cty.NilVal, fmt.Errorf("template %s: %s", p, diags.Error())
			}
			return v, nil
		},
	})
}

var cidrSubnetFunc = function.New(&function.Spec{
	Params: []function.Parameter{
		{Name: "prefix", Type: cty.String},
		{Name: "newbits", Type: cty.Number},
		{Name: "netnum", Type: cty.Number},
	},
	Type: function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		pfx, err := netip.ParsePrefix(args[0].AsString())
		if err != nil {
			return cty.NilVal, fmt.Errorf("invalid CIDR prefix: %w", err)
		}
		pfx = pfx.Masked()
		newbits, _ := args[1].AsBigFloat().Int64()
		netnum, _ := args[2].AsBigFloat().Int(nil)
		total := pfx.Addr().BitLen()
		bits := pfx.Bits() + int(newbits)
		if newbits < 0 || bits > total {
			return cty.NilVal, fmt.Errorf("cannot extend prefix /%d by %d bits: the result would exceed %d bits", pfx.Bits(), newbits, total)
		}
		if netnum.Sign() < 0 || netnum.BitLen() > int(newbits) {
			return cty.NilVal, fmt.Errorf("network number %s does not fit in %d bits", netnum, newbits)
		}
		base := new(big.Int).SetBytes(pfx.Addr().AsSlice())
		base.Or(base, new(big.Int).Lsh(netnum, uint(total-bits)))
		a, err := addrFromInt(base, total)
		if err != nil {
			return cty.NilVal, err
		}
		return cty.StringVal(netip.PrefixFrom(a, bits).String()), nil
	},
})

var cidrHostFunc = function.New(&function.Spec{
	Params: []function.Parameter{
		{Name: "prefix", Type: cty.String},
		{Name: "hostnum", Type: cty.Number},
	},
	Type: function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		pfx, err := netip.ParsePrefix(args[0].AsString())
		if err != nil {
			return cty.NilVal, fmt.Errorf("invalid CIDR prefix: %w", err)
		}
		pfx = pfx.Masked()
		hostnum, _ := args[1].AsBigFloat().Int(nil)
		total := pfx.Addr().BitLen()
		hostbits := total - pfx.Bits()
		size := new(big.Int).Lsh(big.NewInt(1), uint(hostbits))
		if hostnum.Sign() < 0 {
			hostnum.Add(hostnum, size)
		}
		if hostnum.Sign() < 0 || hostnum.Cmp(size) >= 0 {
			return cty.NilVal, fmt.Errorf("host number %s does not fit in %d bits", args[1].AsBigFloat().String(), hostbits)
		}
		base := new(big.Int).SetBytes(pfx.Addr().AsSlice())
		base.Or(base, hostnum)
		a, err := addrFromInt(base, total)
		if err != nil {
			return cty.NilVal, err
		}
		return cty.StringVal(a.String()), nil
	},
})

var cidrNetmaskFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		pfx, err := netip.ParsePrefix(args[0].AsString())
		if err != nil {
			return cty.NilVal, fmt.Errorf("invalid CIDR prefix: %w", err)
		}
		if !pfx.Addr().Is4() {
			return cty.NilVal, fmt.Errorf("cidrnetmask only supports IPv4 prefixes")
		}
		m := new(big.Int).Lsh(new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(pfx.Bits())), big.NewInt(1)), uint(32-pfx.Bits()))
		a, err := addrFromInt(m, 32)
		if err != nil {
			return cty.NilVal, err
		}
		return cty.StringVal(a.String()), nil
	},
})

func addrFromInt(n *big.Int, bits int) (netip.Addr, error) {
	b := n.Bytes()
	size := bits / 8
	if len(b) > size {
		return netip.Addr{}, fmt.Errorf("address out of range")
	}
	buf := make([]byte, size)
	copy(buf[size-len(b):], b)
	a, ok := netip.AddrFromSlice(buf)
	if !ok {
		return netip.Addr{}, fmt.Errorf("address out of range")
	}
	return a, nil
}
