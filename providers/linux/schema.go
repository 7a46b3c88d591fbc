package linux

import (
	"github.com/berthhq/berth/providers"
	"github.com/zclconf/go-cty/cty"
)

// Kinds of the linux provider.
const (
	KindRegistry  = "registry"
	KindImage     = "image"
	KindVolume    = "volume"
	KindContainer = "container"
	KindNetwork   = "network"
)

func str(desc string) *providers.Attribute {
	return &providers.Attribute{Type: cty.String, Optional: true, Description: desc}
}

func computed(ty cty.Type, desc string) *providers.Attribute {
	return &providers.Attribute{Type: ty, Computed: true, Description: desc}
}

func optComputed(ty cty.Type, desc string) *providers.Attribute {
	return &providers.Attribute{Type: ty, Optional: true, Computed: true, Description: desc}
}

func kinds() map[string]*providers.Kind {
	return map[string]*providers.Kind{
		KindRegistry:  registryKind(),
		KindImage:     imageKind(),
		KindVolume:    volumeKind(),
		KindContainer: containerKind(),
		KindNetwork:   networkKind(),
	}
}

func networkKind() *providers.Kind {
	return &providers.Kind{
		Description: "A bridge network: containers on it reach each other by name and alias, and the outside through NAT unless it is internal.",
		Block: &providers.Block{Attributes: map[string]*providers.Attribute{
			"name":     optComputed(cty.String, "The network's name; the resource's name unless set."),
			"driver":   optComputed(cty.String, `"bridge" (default) or "macvlan" (containers sit on the LAN of parent with their own MAC and address).`),
			"parent":   str("macvlan: the host's interface on the LAN, e.g. \"eth0\"."),
			"mode":     str(`macvlan: "bridge" (default), "private", "vepa" or "passthru".`),
			"subnet":   optComputed(cty.String, "The IPv4 subnet in CIDR form; berth picks a free /24 of 10.89.0.0/16 unless set."),
			"gateway":  optComputed(cty.String, "The bridge's address; the subnet's first address unless set."),
			"internal": {Type: cty.Bool, Optional: true, Computed: true, Description: "No outbound NAT and no published ports."},
			"labels":   {Type: cty.Map(cty.String), Optional: true, Description: "Labels of the network."},
			"id":       computed(cty.String, "The network's name."),
			"bridge":   computed(cty.String, "The host interface of the network's bridge."),
		}},
	}
}

func registryKind() *providers.Kind {
	return &providers.Kind{
		Description: "Credentials and transport settings of a container registry, used by the images pulled from it.",
		Block: &providers.Block{Attributes: map[string]*providers.Attribute{
			"address":  {Type: cty.String, Required: true, ForceNew: true, Description: `The registry's host and port, e.g. "127.0.0.1:5000".`},
			"username": str("The user for basic authentication."),
			"password": {Type: cty.String, Optional: true, Sensitive: true, Description: "The password for basic authentication; never shown."},
			"insecure": {Type: cty.Bool, Optional: true, Description: "Talk plain HTTP to the registry. HTTPS otherwise."},
			"ca_file":  str("A PEM file of certificate authorities to trust besides the system's."),
			"id":       computed(cty.String, "The address."),
		}},
	}
}

func imageKind() *providers.Kind {
	return &providers.Kind{
		Description: "An image in berth's content store, pulled from a registry or loaded from an archive.",
		// A tag may move on the registry: plan asks every time.
		ReadsOutside: true,
		Block: &providers.Block{Attributes: map[string]*providers.Attribute{
			"ref":      {Type: cty.String, Optional: true, Description: "name:tag, host:port/name:tag or name@sha256:..."},
			"registry": str("The registry resource to pull from (its address); else the ref's host with ~/.docker/config.json credentials."),
			"pull":     optComputed(cty.String, `"missing" (default): pull when not in the store; "always": resolve the tag at every plan.`),
			"archive":  str("A docker save or OCI layout tarball to load instead of pulling."),
			"digest":   computed(cty.String, "The manifest digest the image resolved to."),
			"id":       computed(cty.String, "ref@digest: changes whenever the digest does, so containers using the image are replaced."),
		}},
	}
}

func volumeKind() *providers.Kind {
	return &providers.Kind{
		Description:    "A named volume under berth's state directory.",
		DestroyWarning: "destroys data",
		Importable:     true,
		Block: &providers.Block{Attributes: map[string]*providers.Attribute{
			"name":   optComputed(cty.String, "The volume's name; the resource's name unless set."),
			"labels": {Type: cty.Map(cty.String), Optional: true, Description: "Labels of the volume."},
			"id":     computed(cty.String, "The name."),
			"path":   computed(cty.String, "The host directory holding the volume's data."),
		}},
	}
}

func containerKind() *providers.Kind {
	list := cty.List(cty.String)
	return &providers.Kind{
		Description: "A container run by berth's embedded runtime under its own shim.",
		Highlights:  []string{"ip_address", "published_ports"},
		Block: &providers.Block{
			Attributes: map[string]*providers.Attribute{
				"image":           {Type: cty.String, Required: true, Description: "The image: an image resource (image.app) or a reference of an image in the store."},
				"name":            optComputed(cty.String, "The container's name; the resource's name unless set."),
				"command":         {Type: list, Optional: true, Description: "Replaces the image's Cmd."},
				"entrypoint":      {Type: list, Optional: true, Description: "Replaces the image's Entrypoint (and drops its Cmd)."},
				"env":             {Type: cty.Map(cty.String), Optional: true, Description: "Environment variables, over the image's."},
				"working_dir":     str("Replaces the image's WorkingDir."),
				"user":            str("user, uid, user:group or uid:gid; replaces the image's User."),
				"hostname":        str("The hostname; the container's name unless set."),
				"labels":          {Type: cty.Map(cty.String), Optional: true, Description: "Labels of the container."},
				"read_only":       {Type: cty.Bool, Optional: true, Description: "Mount the root filesystem read-only."},
				"stop_signal":     str("The signal that stops the container; the image's or SIGTERM."),
				"stop_timeout":    {Type: cty.Number, Optional: true, Description: "Seconds between the stop signal and SIGKILL (10)."},
				"network_mode":    optComputed(cty.String, `"bridge" (default: berth's networks), "host" or "none" (a loopback only).`),
				"ports":           {Type: list, Optional: true, Description: `Published ports: "8080:80", "127.0.0.1:8081:81", "127.0.0.1::82" (a random host port), "5353:53/udp".`},
				"publish_all":     {Type: cty.Bool, Optional: true, Description: "Publish every port the image EXPOSEs on a random host port."},
				"extra_hosts":     {Type: cty.Map(cty.String), Optional: true, Description: "Extra /etc/hosts entries: name = address."},
				"dns":             {Type: list, Optional: true, Description: "Name servers, instead of the host's."},
				"ip_address":      computed(cty.String, "The container's address on its first network."),
				"published_ports": computed(list, `The published ports with their host ports: "127.0.0.1:49153->82/tcp".`),
				"restart":         optComputed(cty.String, `"no" (default), "always", "unless-stopped" or "on-failure".`),
				"max_retries":     {Type: cty.Number, Optional: true, Description: `Restarts allowed by "on-failure" (0: no limit).`},
				"state":           optComputed(cty.String, `"running" (default) or "stopped".`),
				"id":              computed(cty.String, "The container's ID."),
			},
			Blocks: map[string]*providers.NestedBlock{
				"network": {Nesting: providers.NestingList, Block: providers.Block{Attributes: map[string]*providers.Attribute{
					"name":         {Type: cty.String, Required: true, Description: "A network resource (network.front) or a network's name."},
					"aliases":      {Type: list, Optional: true, Description: "More names of the container on this network."},
					"ipv4_address": str("A static address in the network's subnet."),
				}}},
				"publish": {Nesting: providers.NestingList, Block: providers.Block{Attributes: map[string]*providers.Attribute{
					"container_port": {Type: cty.Number, Required: true, Description: "The port in the container."},
					"host_port":      {Type: cty.Number, Optional: true, Description: "The host port; a random one, kept stable, unless set."},
					"host_ip":        str("The host address; every address unless set."),
					"protocol":       str(`"tcp" (default) or "udp".`),
				}}},
				"mount": {Nesting: providers.NestingList, Block: providers.Block{Attributes: map[string]*providers.Attribute{
					"type":             {Type: cty.String, Required: true, Description: `"volume", "bind" or "tmpfs".`},
					"source":           str("A volume resource or name, or the host path of a bind mount."),
					"target":           {Type: cty.String, Required: true, Description: "The absolute path in the container."},
					"read_only":        {Type: cty.Bool, Optional: true},
					"size":             str(`The size cap of a tmpfs mount, e.g. "64M".`),
					"copy_up":          {Type: cty.Bool, Optional: true, Description: "Fill an empty volume from the image's content at target, once (default true)."},
					"create_host_path": {Type: cty.Bool, Optional: true, Description: "Create a missing bind source directory."},
				}}},
				"resources": {Nesting: providers.NestingSingle, MaxItems: 1, Block: providers.Block{Attributes: map[string]*providers.Attribute{
					"cpus":        {Type: cty.Number, Optional: true, Description: "CPU cores, e.g. 0.5."},
					"memory":      str(`Memory limit, e.g. "64M".`),
					"memory_swap": str(`Memory plus swap limit, e.g. "128M"; "-1" for unlimited swap.`),
					"pids_limit":  {Type: cty.Number, Optional: true, Description: "Maximum number of processes."},
				}}},
				"healthcheck": {Nesting: providers.NestingSingle, MaxItems: 1, Block: providers.Block{Attributes: map[string]*providers.Attribute{
					"command":      {Type: list, Required: true, Description: "Run in the container; exit 0 is healthy."},
					"interval":     str(`Time between checks ("30s").`),
					"timeout":      str(`Time a check may take ("30s").`),
					"start_period": str("Time after start during which failures do not count."),
					"retries":      {Type: cty.Number, Optional: true, Description: "Failures in a row that make the container unhealthy (3)."},
				}}},
			},
		},
	}
}

// StaticSchema is the provider's schema, known without starting it.
func StaticSchema() providers.SchemaResponse {
	return providers.SchemaResponse{Name: Name, Kinds: kinds()}
}
