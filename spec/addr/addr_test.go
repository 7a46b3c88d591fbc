package addr

import "testing"

func TestParseRoundTrip(t *testing.T) {
	cases := []struct {
		in   string
		want Instance
	}{
		{"container.web", Instance{Resource: Resource{"container", "web"}}},
		{"container.web[0]", Instance{Resource: Resource{"container", "web"}, Key: IntKey(0)}},
		{"container.web[12]", Instance{Resource: Resource{"container", "web"}, Key: IntKey(12)}},
		{`container.web["blue"]`, Instance{Resource: Resource{"container", "web"}, Key: StringKey("blue")}},
		{`thing.a["with \"quotes\" and ]"]`, Instance{Resource: Resource{"thing", "a"}, Key: StringKey(`with "quotes" and ]`)}},
		{"my_kind.name-1", Instance{Resource: Resource{"my_kind", "name-1"}}},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("Parse(%q) = %#v, want %#v", c.in, got, c.want)
		}
		if got.String() != c.in {
			t.Errorf("String() = %q, want %q", got.String(), c.in)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "container", ".web", "container.", "container.web[", "container.web[-1]", "container.web[01]",
		"container.web[x]", `container.web["x]`, "1kind.web", "container.we b", "container.web[0]x"} {
		if a, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, a)
		}
	}
}

func TestOrder(t *testing.T) {
	a, _ := Parse("thing.a")
	b, _ := Parse("thing.a[1]")
	c, _ := Parse("thing.a[2]")
	d, _ := Parse(`thing.a["x"]`)
	e, _ := Parse("thing.b")
	list := []Instance{a, b, c, d, e}
	for i := 0; i+1 < len(list); i++ {
		if !list[i].Less(list[i+1]) || list[i+1].Less(list[i]) {
			t.Errorf("%s should sort before %s", list[i], list[i+1])
		}
	}
}

// FuzzParse checks that Parse never panics and that String and Parse
// round-trip for every address it accepts.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"container.web", "container.web[3]", `container.web["blue"]`, `a.b["\u00e9"]`, "x.y[", "a.b[1]]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		b, err := Parse(a.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok but Parse(String()=%q) failed: %v", s, a.String(), err)
		}
		if a != b {
			t.Fatalf("round trip changed %#v into %#v", a, b)
		}
	})
}
