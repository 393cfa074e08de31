package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kinds are the API objects a kustomization of ours may produce, each with
// the typed struct it must decode into. Anything else is an error: a typo in
// apiVersion or kind would otherwise reach the cluster unchecked. Add a kind
// here when the manifests start using it.
var kinds = map[schema.GroupVersionKind]func() any{
	corev1.SchemeGroupVersion.WithKind("ConfigMap"):                      func() any { return new(corev1.ConfigMap) },
	corev1.SchemeGroupVersion.WithKind("Namespace"):                      func() any { return new(corev1.Namespace) },
	corev1.SchemeGroupVersion.WithKind("Secret"):                         func() any { return new(corev1.Secret) },
	corev1.SchemeGroupVersion.WithKind("Service"):                        func() any { return new(corev1.Service) },
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"):                 func() any { return new(corev1.ServiceAccount) },
	appsv1.SchemeGroupVersion.WithKind("Deployment"):                     func() any { return new(appsv1.Deployment) },
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"):                    func() any { return new(appsv1.StatefulSet) },
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"):          func() any { return new(policyv1.PodDisruptionBudget) },
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"):            func() any { return new(networkingv1.NetworkPolicy) },
	networkingv1.SchemeGroupVersion.WithKind("Ingress"):                  func() any { return new(networkingv1.Ingress) },
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"): func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
}

// Manifest is one object of the build, decoded into its typed API struct.
type Manifest struct {
	// ID names the object in messages: Kind/name, or Kind/namespace/name.
	ID        string
	Kind      string
	Namespace string
	// Object is a pointer to the typed struct, such as *appsv1.Deployment.
	Object any
}

// Problem is one failed check, tied to a manifest and, where there is one, a
// field path within it.
type Problem struct {
	Manifest string
	Field    string
	Message  string
}

// String renders the problem as "Kind/name: field: message".
func (p Problem) String() string {
	if p.Field == "" {
		return p.Manifest + ": " + p.Message
	}
	return p.Manifest + ": " + p.Field + ": " + p.Message
}

// ProblemsError is returned by Check when the build succeeded but some
// manifests failed decoding or a check.
type ProblemsError struct {
	Problems []Problem
}

// Error names the first problem and how many there are.
func (e *ProblemsError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].String()
	}
	return fmt.Sprintf("%s (and %d more problems)", e.Problems[0], len(e.Problems)-1)
}

// Report lists the manifests of a build that decoded.
type Report struct {
	Manifests []Manifest
}

// Summary is "N manifests (Kind count, ...)", kinds sorted by name.
func (r *Report) Summary() string {
	counts := map[string]int{}
	for _, m := range r.Manifests {
		counts[m.Kind]++
	}
	parts := make([]string, 0, len(counts))
	for _, kind := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", kind, counts[kind]))
	}
	return fmt.Sprintf("%d manifests (%s)", len(r.Manifests), strings.Join(parts, ", "))
}

// Check builds the kustomization in dir, decodes every resulting manifest
// strictly and runs the semantic checks. A failed build is a plain error;
// failed manifests are a *ProblemsError listing all of them, returned with
// the report of what did decode.
func Check(dir string) (*Report, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	report := &Report{}
	var problems []Problem
	for _, res := range resMap.Resources() {
		id := res.GetKind() + "/" + res.GetName()
		if ns := res.GetNamespace(); ns != "" {
			id = res.GetKind() + "/" + ns + "/" + res.GetName()
		}
		data, err := res.MarshalJSON()
		if err != nil {
			problems = append(problems, Problem{Manifest: id, Message: fmt.Sprintf("render as JSON: %v", err)})
			continue
		}
		obj, probs := decode(id, res.GetApiVersion(), res.GetKind(), data)
		problems = append(problems, probs...)
		if obj != nil {
			report.Manifests = append(report.Manifests, Manifest{ID: id, Kind: res.GetKind(), Namespace: res.GetNamespace(), Object: obj})
		}
	}
	problems = append(problems, lint(report.Manifests)...)
	if len(problems) > 0 {
		return report, &ProblemsError{Problems: problems}
	}
	return report, nil
}

// decode unmarshals one manifest into its typed struct: case-sensitive field
// names, no unknown and no duplicate fields, types as the API defines them.
// A manifest with unknown fields is still returned, so that the checks can
// say what the misspelling left missing.
func decode(id, apiVersion, kind string, data []byte) (any, []Problem) {
	gvk := schema.FromAPIVersionAndKind(apiVersion, kind)
	newObj, ok := kinds[gvk]
	if !ok {
		return nil, []Problem{{Manifest: id, Message: fmt.Sprintf(
			"apiVersion %q kind %q is not a known kind (add it to the kinds table in tools/kustomizecheck if it belongs there)",
			apiVersion, kind)}}
	}
	obj := newObj()
	strictErrs, err := kjson.UnmarshalStrict(data, obj)
	if err != nil {
		return nil, []Problem{{Manifest: id, Message: err.Error()}}
	}
	var problems []Problem
	for _, e := range strictErrs {
		problems = append(problems, Problem{Manifest: id, Message: e.Error()})
	}
	return obj, problems
}
