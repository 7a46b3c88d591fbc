package plugin

import "github.com/berthhq/berth/providers"

// PID returns the process ID of the provider behind c.
func PID(c *Client) int { return c.cmd.Process.Pid }

// ServeVersion is Serve speaking another protocol version.
func ServeVersion(p providers.Provider, version int) { serve(p, version) }
