// Command kustomizecheck builds a kustomization in-process, decodes every
// manifest it produces strictly into its typed Kubernetes API struct, and
// checks the few deployment rules accessbus relies on.
//
// Usage (from the tools module):
//
//	GOWORK=off go run ./kustomizecheck ../deploy/base
//
// It prints a one-line summary and exits 0, or prints every problem, one per
// line naming the manifest and the field, and exits 1. Bad usage exits 2.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintln(stderr, "usage: kustomizecheck <kustomization-dir>")
		return 2
	}
	dir := args[0]
	report, err := Check(dir)
	var problems *ProblemsError
	switch {
	case errors.As(err, &problems):
		fmt.Fprintf(stderr, "kustomizecheck: %s: %d problem(s):\n", dir, len(problems.Problems))
		for _, p := range problems.Problems {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "kustomizecheck: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "kustomizecheck: %s: ok, %s\n", dir, report.Summary())
	return 0
}
