package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/accessbus/accessbus/libs/auth"
	"github.com/accessbus/accessbus/libs/telemetry"
)

// The API key the CLI sends with every call of the platform's APIs.
const (
	// envAPIKey holds the caller's API key.
	envAPIKey = "ACCESSBUS_API_KEY"
	// adminAPIKeyFile is where `accessbus dev` writes the first Super
	// Administrator's key, in its data dir.
	adminAPIKeyFile = "admin-api-key"
)

// apiKey returns the API key to call with: ACCESSBUS_API_KEY, else the key
// file `accessbus dev` wrote in dataDir; unset when neither has one (the
// server then answers Unauthenticated and says how to give one).
func apiKey(dataDir string) telemetry.Secret {
	if k := strings.TrimSpace(os.Getenv(envAPIKey)); k != "" {
		return telemetry.NewSecret(k)
	}
	return dataDirKey(dataDir)
}

// dataDirKey is the key `accessbus dev` wrote in dataDir, whatever
// ACCESSBUS_API_KEY holds (for a command that starts its own accessbus
// dev); unset when there is none.
func dataDirKey(dataDir string) telemetry.Secret {
	b, err := os.ReadFile(filepath.Join(dataDir, adminAPIKeyFile))
	if err != nil {
		return telemetry.Secret{}
	}
	return telemetry.NewSecret(strings.TrimSpace(string(b)))
}

// apiKeyOption sends apiKey(dataDir) as the bearer key of every call.
func apiKeyOption(dataDir string) connect.ClientOption {
	return connect.WithInterceptors(auth.ClientKey(apiKey(dataDir)))
}

// apiOptions are the flags of the commands that call the platform's APIs
// with an API key.
type apiOptions struct {
	server, dataDir string
	json            bool
}

func (o *apiOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.server, "server", defaultServer, "base URL of the accessbus HTTP API")
	dataDirFlag(cmd, &o.dataDir)
	f.BoolVar(&o.json, "json", false, "print the API's answers as JSON lines")
}

// dataDirFlag adds --data-dir: where the API key is found when
// ACCESSBUS_API_KEY is not set.
func dataDirFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "data-dir", defaultDataDir, "accessbus dev's data dir, whose "+adminAPIKeyFile+" is the API key when "+envAPIKey+" is not set")
}

// base is the server URL without a trailing slash.
func (o *apiOptions) base() string { return strings.TrimRight(o.server, "/") }

// httpClient is the HTTP client of the API calls.
func (o *apiOptions) httpClient() *http.Client { return &http.Client{} }
