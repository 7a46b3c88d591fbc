package linux

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestParsePort(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		in   string
		want portSpec
		err  string
	}{
		{in: "8080:80", want: portSpec{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}},
		{in: "127.0.0.1:8081:81", want: portSpec{HostIP: lo, HostPort: 8081, ContainerPort: 81, Proto: "tcp"}},
		{in: "127.0.0.1::82", want: portSpec{HostIP: lo, ContainerPort: 82, Proto: "tcp"}},
		{in: "5353:53/udp", want: portSpec{HostPort: 5353, ContainerPort: 53, Proto: "udp"}},
		{in: "80", want: portSpec{ContainerPort: 80, Proto: "tcp"}},
		{in: "0.0.0.0:80:80/tcp", want: portSpec{HostPort: 80, ContainerPort: 80, Proto: "tcp"}},
		{in: "80:80/sctp", err: `protocol "sctp"`},
		{in: "70000:80", err: `"70000" is not a port number`},
		{in: "a:b", err: "accepted forms"},
		{in: "localhost:80:80", err: "not an IPv4 address"},
		{in: "::1:80:80", err: "accepted forms"},
		{in: "1:2:3:4", err: "accepted forms"},
		{in: "8080:", err: `"" is not a port number`},
		{in: "0:80", err: `"0" is not a port number`},
	}
	for _, tt := range tests {
		got, err := parsePort(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parsePort(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestValidateContainerNet(t *testing.T) {
	ty := containerKind().Block.ImpliedType()
	netTy := ty.AttributeType("network").ElementType()
	base := func(attrs map[string]cty.Value) obj {
		m := map[string]cty.Value{}
		for name, aty := range ty.AttributeTypes() {
			m[name] = cty.NullVal(aty)
		}
		for k, v := range attrs {
			m[k] = v
		}
		return obj{cty.ObjectVal(m)}
	}
	strs := func(s ...string) cty.Value {
		var l []cty.Value
		for _, x := range s {
			l = append(l, cty.StringVal(x))
		}
		return cty.ListVal(l)
	}
	network := func(name, addr string) cty.Value {
		m := map[string]cty.Value{}
		for n, aty := range netTy.AttributeTypes() {
			m[n] = cty.NullVal(aty)
		}
		m["name"] = cty.StringVal(name)
		if addr != "" {
			m["ipv4_address"] = cty.StringVal(addr)
		}
		return cty.ObjectVal(m)
	}
	pubTy := ty.AttributeType("publish").ElementType()
	publish := func(cport, hport int, ip, proto string) cty.Value {
		m := map[string]cty.Value{}
		for n, aty := range pubTy.AttributeTypes() {
			m[n] = cty.NullVal(aty)
		}
		m["container_port"] = cty.NumberIntVal(int64(cport))
		if hport != 0 {
			m["host_port"] = cty.NumberIntVal(int64(hport))
		}
		if ip != "" {
			m["host_ip"] = cty.StringVal(ip)
		}
		if proto != "" {
			m["protocol"] = cty.StringVal(proto)
		}
		return cty.ObjectVal(m)
	}
	tests := []struct {
		name  string
		attrs map[string]cty.Value
		want  string // "" means no diagnostic
	}{
		{"every port form", map[string]cty.Value{"ports": strs("8080:80", "127.0.0.1:8081:81", "127.0.0.1::82", "5353:53/udp")}, ""},
		{"bad port", map[string]cty.Value{"ports": strs("80:80:80:80")}, "accepted forms"},
		{"host port twice", map[string]cty.Value{"ports": strs("8080:80", "8080:81")}, "published twice, by ports[0] and ports[1]"},
		{"same port, two protocols", map[string]cty.Value{"ports": strs("53:53", "53:53/udp")}, ""},
		{"same port, two host addresses", map[string]cty.Value{"ports": strs("127.0.0.1:80:80", "127.0.0.2:80:80")}, ""},
		{"ports in host mode", map[string]cty.Value{"network_mode": cty.StringVal("host"), "ports": strs("80:80")}, "ports applies to containers on berth's networks"},
		{"network block in none mode", map[string]cty.Value{"network_mode": cty.StringVal("none"), "network": cty.ListVal([]cty.Value{network("a", "")})}, "network blocks apply"},
		{"bad static address", map[string]cty.Value{"network": cty.ListVal([]cty.Value{network("a", "10.0.0.300")})}, "invalid ipv4_address"},
		{"same network twice", map[string]cty.Value{"network": cty.ListVal([]cty.Value{network("a", ""), network("a", "")})}, "attached to network \"a\" twice"},
		{"bad extra host", map[string]cty.Value{"extra_hosts": cty.MapVal(map[string]cty.Value{"db": cty.StringVal("nowhere")})}, "is not an IP address"},
		{"bad dns", map[string]cty.Value{"dns": strs("1.1.1")}, "is not an IP address"},
		{"publish block", map[string]cty.Value{"publish": cty.ListVal([]cty.Value{publish(80, 8080, "", "")})}, ""},
		{"publish block bad port", map[string]cty.Value{"publish": cty.ListVal([]cty.Value{publish(70000, 0, "", "")})}, "container_port 70000"},
		{"publish block bad protocol", map[string]cty.Value{"publish": cty.ListVal([]cty.Value{publish(80, 0, "", "sctp")})}, `unknown protocol "sctp"`},
		{"publish block bad host_ip", map[string]cty.Value{"publish": cty.ListVal([]cty.Value{publish(80, 0, "::1", "")})}, "invalid host_ip"},
		{"publish block and ports on one host port", map[string]cty.Value{"ports": strs("8080:80"), "publish": cty.ListVal([]cty.Value{publish(81, 8080, "", "")})}, "published twice"},
		{"publish_all in host mode", map[string]cty.Value{"network_mode": cty.StringVal("host"), "publish_all": cty.True}, "publish and publish_all apply"},
	}
	for _, tt := range tests {
		diags := validateContainerNet(base(tt.attrs))
		got := ""
		for _, d := range diags {
			got += d.Summary + " " + d.Detail + "\n"
		}
		switch {
		case tt.want == "" && len(diags) > 0:
			t.Errorf("%s: unexpected diagnostics:\n%s", tt.name, got)
		case tt.want != "" && !strings.Contains(got, tt.want):
			t.Errorf("%s: diagnostics %q do not say %q", tt.name, got, tt.want)
		}
	}
}

func TestPublishSpec(t *testing.T) {
	ty := containerKind().Block.ImpliedType().AttributeType("publish").ElementType()
	mk := func(attrs map[string]cty.Value) obj {
		m := map[string]cty.Value{}
		for n, aty := range ty.AttributeTypes() {
			m[n] = cty.NullVal(aty)
		}
		for k, v := range attrs {
			m[k] = v
		}
		return obj{cty.ObjectVal(m)}
	}
	tests := []struct {
		attrs map[string]cty.Value
		want  string
	}{
		{map[string]cty.Value{"container_port": cty.NumberIntVal(80)}, "80"},
		{map[string]cty.Value{"container_port": cty.NumberIntVal(80), "host_port": cty.NumberIntVal(8080)}, "8080:80"},
		{map[string]cty.Value{"container_port": cty.NumberIntVal(82), "host_ip": cty.StringVal("127.0.0.1")}, "127.0.0.1::82"},
		{map[string]cty.Value{"container_port": cty.NumberIntVal(53), "host_port": cty.NumberIntVal(5353), "host_ip": cty.StringVal("10.0.0.1"), "protocol": cty.StringVal("udp")}, "10.0.0.1:5353:53/udp"},
	}
	for _, tt := range tests {
		if got := publishSpec(mk(tt.attrs)); got != tt.want {
			t.Errorf("publishSpec(%v) = %q, want %q", tt.attrs, got, tt.want)
		}
		if _, err := parsePort(publishSpec(mk(tt.attrs))); err != nil {
			t.Errorf("the form %q of a publish block does not parse: %v", tt.want, err)
		}
	}
}

func TestValidateNetwork(t *testing.T) {
	ty := networkKind().Block.ImpliedType()
	mk := func(attrs map[string]string) obj {
		m := map[string]cty.Value{}
		for name, aty := range ty.AttributeTypes() {
			m[name] = cty.NullVal(aty)
		}
		for k, v := range attrs {
			m[k] = cty.StringVal(v)
		}
		return obj{cty.ObjectVal(m)}
	}
	tests := []struct {
		attrs map[string]string
		want  string
	}{
		{map[string]string{"subnet": "10.89.7.0/24", "gateway": "10.89.7.1"}, ""},
		{map[string]string{"subnet": "10.89.7.0/33"}, "invalid subnet"},
		{map[string]string{"subnet": "10.89.7.1/24"}, "host bits set"},
		{map[string]string{"subnet": "10.89.7.0/24", "gateway": "10.89.8.1"}, "gateway 10.89.8.1"},
		{map[string]string{"gateway": "10.89.8.1"}, "needs the subnet"},
		{map[string]string{"driver": "overlay"}, "unknown network driver"},
		{map[string]string{"driver": "macvlan", "subnet": "10.77.0.0/24"}, "needs parent"},
		{map[string]string{"driver": "macvlan", "parent": "eth0"}, "needs the LAN's subnet"},
		{map[string]string{"driver": "macvlan", "parent": "eth0", "subnet": "10.77.0.0/24", "mode": "loud"}, "unknown macvlan mode"},
		{map[string]string{"parent": "eth0"}, "applies to the macvlan driver only"},
		{map[string]string{"name": "default"}, "berth's own default network"},
	}
	for _, tt := range tests {
		diags := validateNetwork(mk(tt.attrs))
		got := ""
		for _, d := range diags {
			got += d.Summary + " " + d.Detail + "\n"
		}
		if tt.want == "" && len(diags) > 0 || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("validateNetwork(%v) = %q; want %q", tt.attrs, got, tt.want)
		}
	}
}
