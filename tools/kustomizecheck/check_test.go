package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The real manifests must pass; everything else in this file is a small
// kustomization written to a temp dir.
func TestDeployKustomizationsPass(t *testing.T) {
	for _, dir := range []string{"../../deploy/base", "../../deploy/overlays/dev"} {
		t.Run(dir, func(t *testing.T) {
			report, err := Check(dir)
			if err != nil {
				t.Fatalf("Check(%s): %v", dir, err)
			}
			counts := map[string]int{}
			for _, m := range report.Manifests {
				counts[m.Kind]++
			}
			if counts["StatefulSet"] != 1 || counts["Deployment"] < 5 || counts["PodDisruptionBudget"] < 1 {
				t.Errorf("unexpected kinds in %s: %s", dir, report.Summary())
			}
		})
	}
}

func TestRunPrintsSummary(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"../../deploy/base"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, " manifests (") || !strings.Contains(out, "StatefulSet 1") {
		t.Errorf("summary = %q, want one line naming the manifest count and kinds", out)
	}
}

func TestRunUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d without arguments, want 2", code)
	}
}

// validDeployment passes every check; the failure cases each break one thing.
const validDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
        - name: demo
          image: demo
          ports: [{name: http, containerPort: 8080}]
          envFrom:
            - configMapRef: {name: demo}
          livenessProbe: {httpGet: {path: /healthz, port: http}}
          readinessProbe: {httpGet: {path: /readyz, port: http}}
          resources:
            requests: {cpu: 10m, memory: 16Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: demo
spec:
  selector: {app: demo}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
data:
  ACCESSBUS_LOG_LEVEL: info
`

func TestValidKustomizationPasses(t *testing.T) {
	dir := writeKustomization(t, validDeployment)
	report, err := Check(dir)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got, want := report.Summary(), "3 manifests (ConfigMap 1, Deployment 1, Service 1)"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name string
		// old is replaced by new in validDeployment.
		old, new string
		// want are substrings of one problem line each.
		want []string
	}{
		{
			name: "misspelled field",
			old:  "  replicas: 2\n", new: "  replica: 2\n",
			want: []string{`Deployment/demo: unknown field "spec.replica"`},
		},
		{
			name: "field with the wrong case",
			old:  "  replicas: 2\n", new: "  Replicas: 2\n",
			want: []string{`Deployment/demo: unknown field "spec.Replicas"`},
		},
		{
			name: "wrong type",
			old:  "  replicas: 2\n", new: "  replicas: two\n",
			want: []string{"Deployment/demo: ", "replicas", "int32"},
		},
		{
			name: "token in a ConfigMap",
			old:  "  ACCESSBUS_LOG_LEVEL: info\n", new: "  ACCESSBUS_LOG_LEVEL: info\n  ACCESSBUS_OKTA_API_TOKEN: not-a-real-token\n",
			want: []string{"ConfigMap/demo: data.ACCESSBUS_OKTA_API_TOKEN: looks like a secret"},
		},
		{
			name: "password in a ConfigMap, lower case",
			old:  "  ACCESSBUS_LOG_LEVEL: info\n", new: "  ACCESSBUS_LOG_LEVEL: info\n  smtp_password: x\n",
			want: []string{"ConfigMap/demo: data.smtp_password: looks like a secret"},
		},
		{
			name: "unknown kind",
			old:  "kind: ConfigMap\n", new: "kind: ConfigMapp\n",
			want: []string{`ConfigMapp/demo: apiVersion "v1" kind "ConfigMapp" is not a known kind`},
		},
		{
			name: "no liveness probe",
			old:  "          livenessProbe: {httpGet: {path: /healthz, port: http}}\n", new: "",
			want: []string{`Deployment/demo: spec.template.spec.containers[0].livenessProbe: container "demo" has no livenessProbe`},
		},
		{
			name: "no readiness probe",
			old:  "          readinessProbe: {httpGet: {path: /readyz, port: http}}\n", new: "",
			want: []string{`Deployment/demo: spec.template.spec.containers[0].readinessProbe: container "demo" has no readinessProbe`},
		},
		{
			name: "probe on an unnamed port",
			old:  "readinessProbe: {httpGet: {path: /readyz, port: http}}", new: "readinessProbe: {httpGet: {path: /readyz, port: htp}}",
			want: []string{`spec.template.spec.containers[0].readinessProbe: port "htp" is not a named port`},
		},
		{
			name: "no memory request",
			old:  "requests: {cpu: 10m, memory: 16Mi}", new: "requests: {cpu: 10m}",
			want: []string{`spec.template.spec.containers[0].resources.requests.memory: container "demo" has no memory request`},
		},
		{
			name: "secret as a literal env value",
			old:  "          envFrom:\n", new: "          env: [{name: ACCESSBUS_SECRETS_KEY, value: abc}]\n          envFrom:\n",
			want: []string{"spec.template.spec.containers[0].env[0]: ACCESSBUS_SECRETS_KEY is set to a literal value"},
		},
		{
			name: "missing ConfigMap",
			old:  "configMapRef: {name: demo}", new: "configMapRef: {name: demo-config}",
			want: []string{`spec.template.spec.containers[0].envFrom[0].configMapRef: ConfigMap "demo-config" is not part of this build`},
		},
		{
			name: "service selects nothing",
			old:  "  selector: {app: demo}\n", new: "  selector: {app: dmeo}\n",
			want: []string{"Service/demo: spec.selector: app=dmeo selects no pod template"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(validDeployment, tt.old) {
				t.Fatalf("test case does not apply: %q not in the manifest", tt.old)
			}
			dir := writeKustomization(t, strings.Replace(validDeployment, tt.old, tt.new, 1))
			_, err := Check(dir)
			var problems *ProblemsError
			if !errors.As(err, &problems) {
				t.Fatalf("Check = %v, want a *ProblemsError", err)
			}
			var lines []string
			for _, p := range problems.Problems {
				lines = append(lines, p.String())
			}
			for _, line := range lines {
				if containsAll(line, tt.want) {
					return
				}
			}
			t.Errorf("no problem line contains all of %q; got:\n%s", tt.want, strings.Join(lines, "\n"))
		})
	}
}

// The command names the manifest and the field on stderr and exits 1.
func TestRunReportsMisspelledField(t *testing.T) {
	dir := writeKustomization(t, strings.Replace(validDeployment, "  replicas: 2\n", "  replica: 2\n", 1))
	var stdout, stderr bytes.Buffer
	if code := run([]string{dir}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), `Deployment/demo: unknown field "spec.replica"`) {
		t.Errorf("stderr = %q, want it to name the manifest and field", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing on failure", stdout.String())
	}
}

func TestBuildErrorIsReported(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), "resources: [missing.yaml]\n")
	_, err := Check(dir)
	var problems *ProblemsError
	if err == nil || errors.As(err, &problems) || !strings.Contains(err.Error(), "kustomize build") {
		t.Errorf("Check = %v, want a kustomize build error", err)
	}
}

func writeKustomization(t *testing.T, manifests string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), "resources: [manifests.yaml]\n")
	writeFile(t, filepath.Join(dir, "manifests.yaml"), manifests)
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
