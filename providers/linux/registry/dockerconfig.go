package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerHubAuthKey is the key docker uses for Docker Hub credentials.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// dockerCredentials returns the credentials the docker config file at path
// holds for registry (inline auths, credHelpers or credsStore, as docker
// reads them), the username and the secret (to mask it in errors).
// A missing file or no entry means anonymous access.
func dockerCredentials(path, registry string) (authn.Authenticator, string, string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return authn.Anonymous, "", "", nil
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("docker config: %w", err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, "", "", fmt.Errorf("docker config %s: %w", path, err)
	}
	key := registry
	if registry == DefaultRegistry {
		key = dockerHubAuthKey
	}
	ac, err := cf.GetAuthConfig(key)
	if err != nil {
		return nil, "", "", fmt.Errorf("docker config %s: credentials for %s: %w", path, registry, err)
	}
	ac.ServerAddress = ""
	if ac == (types.AuthConfig{}) {
		return authn.Anonymous, "", "", nil
	}
	secret := ac.Password
	if secret == "" {
		secret = ac.IdentityToken
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      ac.Username,
		Password:      ac.Password,
		Auth:          ac.Auth,
		IdentityToken: ac.IdentityToken,
		RegistryToken: ac.RegistryToken,
	}), ac.Username, secret, nil
}
