package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Defaults shared by the CLI commands.
const (
	defaultDataDir = ".accessbus"
	defaultNATSURL = "nats://127.0.0.1:4222"
	natsURLFile    = "nats-url"
)

// resolveNATSURL picks the NATS server a CLI command talks to: the flag, then
// ACCESSBUS_NATS_URL, then the URL a running `accessbus dev` wrote into its
// data dir, then the local default.
func resolveNATSURL(flag, dataDir string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if env := os.Getenv("ACCESSBUS_NATS_URL"); env != "" {
		return env, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, natsURLFile))
	switch {
	case err == nil:
		return strings.TrimSpace(string(b)), nil
	case errors.Is(err, fs.ErrNotExist):
		return defaultNATSURL, nil
	default:
		return "", fmt.Errorf("read the NATS URL of accessbus dev: %w", err)
	}
}
