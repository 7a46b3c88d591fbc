// Package plugin carries berth's provider protocol between processes: the
// engine talks to every provider, built in or third party, through
// hashicorp/go-plugin over gRPC.
//
// A provider binary calls Serve from its main function. berth starts a
// provider with Start, which returns a Client that implements
// providers.Provider, and finds third-party providers with Discover. The wire
// format is defined in proto/provider.proto: values cross as msgpack with
// their type, so unknown values survive; marks never cross.
//
// A Client never hangs and never panics: a provider that crashes, hangs past
// the caller's deadline or answers garbage turns into error diagnostics that
// name the provider and the operation.
package plugin

import (
	"context"
	"errors"

	"github.com/berthhq/berth/providers"
	providerpb "github.com/berthhq/berth/providers/plugin/proto"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

const (
	// MagicCookieKey is the environment variable through which berth tells
	// a provider binary that berth started it.
	MagicCookieKey = "BERTH_PLUGIN_MAGIC_COOKIE"
	// MagicCookieValue is the value of MagicCookieKey.
	MagicCookieValue = "2f4c1e9a7b3d4e0f-berth-provider"
	// PluginName is the name under which the provider protocol is dispensed
	// by go-plugin.
	PluginName = "provider"
	// maxMessageSize bounds one gRPC message in either direction.
	maxMessageSize = 256 << 20
)

// Handshake returns the go-plugin handshake of the given provider protocol
// version. Serve and Start use providers.ProtocolVersion.
func Handshake(version int) goplugin.HandshakeConfig {
	return goplugin.HandshakeConfig{
		ProtocolVersion:  uint(version),
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// GRPCPlugin is the go-plugin plugin that carries the provider protocol.
// Serve and Start use it; tests can use it with go-plugin's in-process
// helpers (plugin.TestPluginGRPCConn), whose Dispense then returns a
// providers.Provider.
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	// Provider is the provider served by the server half; the client half
	// does not use it.
	Provider providers.Provider
	// Name names the provider in the errors of the client half.
	Name string
}

// GRPCServer registers the provider protocol on s.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.Provider == nil {
		return errors.New("no provider to serve")
	}
	providerpb.RegisterProviderServer(s, newServer(p.Provider, new(typeCache)))
	return nil
}

// GRPCClient returns a providers.Provider that forwards every call over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &remote{name: p.Name, rpc: providerpb.NewProviderClient(conn), types: new(typeCache)}, nil
}

// grpcServerOptions are the options of the gRPC server of a provider.
func grpcServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessageSize),
		grpc.MaxSendMsgSize(maxMessageSize),
	}
}
