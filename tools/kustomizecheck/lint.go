package main

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// sensitiveWords mark a configuration key as secret. Such keys belong in a
// Secret: a ConfigMap is readable by anyone who can read the namespace's
// config and ends up in logs, diffs and `kubectl describe`.
var sensitiveWords = []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL"}

func sensitive(key string) bool {
	upper := strings.ToUpper(key)
	return slices.ContainsFunc(sensitiveWords, func(w string) bool { return strings.Contains(upper, w) })
}

// podTemplate is a workload's pod template with where it came from.
type podTemplate struct {
	manifest  string
	namespace string
	path      string // field path of the template, "spec.template"
	labels    map[string]string
	spec      *corev1.PodSpec
}

// store is what the build holds under one name: a ConfigMap's or a Secret's keys.
type store map[string]bool

// lint runs the semantic checks over the decoded manifests.
func lint(manifests []Manifest) []Problem {
	var (
		problems   []Problem
		templates  []podTemplate
		configMaps = map[string]store{} // namespace/name
		secrets    = map[string]store{}
		services   []Manifest
	)
	for _, m := range manifests {
		switch obj := m.Object.(type) {
		case *appsv1.Deployment:
			templates = append(templates, podTemplate{m.ID, m.Namespace, "spec.template", obj.Spec.Template.Labels, &obj.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			templates = append(templates, podTemplate{m.ID, m.Namespace, "spec.template", obj.Spec.Template.Labels, &obj.Spec.Template.Spec})
		case *corev1.ConfigMap:
			keys := store{}
			for k := range obj.Data {
				keys[k] = true
				if sensitive(k) {
					problems = append(problems, Problem{m.ID, "data." + k, "looks like a secret (key names a token, secret, password or key); put it in a Secret"})
				}
			}
			for k := range obj.BinaryData {
				keys[k] = true
				if sensitive(k) {
					problems = append(problems, Problem{m.ID, "binaryData." + k, "looks like a secret (key names a token, secret, password or key); put it in a Secret"})
				}
			}
			configMaps[m.Namespace+"/"+obj.Name] = keys
		case *corev1.Secret:
			keys := store{}
			for k := range obj.Data {
				keys[k] = true
			}
			for k := range obj.StringData {
				keys[k] = true
			}
			secrets[m.Namespace+"/"+obj.Name] = keys
		case *corev1.Service:
			services = append(services, m)
		}
	}
	for _, t := range templates {
		problems = append(problems, lintPod(t, configMaps, secrets)...)
	}
	for _, m := range services {
		problems = append(problems, lintService(m, m.Object.(*corev1.Service), templates)...)
	}
	return problems
}

// lintPod checks one pod template: probes and requests on every container,
// no secret-looking literal env values, and every ConfigMap and Secret it
// reads present in the build (a missing one leaves the pod stuck in
// CreateContainerConfigError).
func lintPod(t podTemplate, configMaps, secrets map[string]store) []Problem {
	var problems []Problem
	add := func(field, format string, args ...any) {
		problems = append(problems, Problem{t.manifest, field, fmt.Sprintf(format, args...)})
	}
	ref := func(field, what string, stores map[string]store, name, key string, optional *bool) {
		if optional != nil && *optional {
			return
		}
		keys, ok := stores[t.namespace+"/"+name]
		switch {
		case !ok:
			add(field, "%s %q is not part of this build", what, name)
		case key != "" && !keys[key]:
			add(field, "%s %q has no key %q", what, name, key)
		}
	}
	checkContainer := func(field string, c *corev1.Container, workload bool) {
		if workload {
			ports := map[string]bool{}
			for _, p := range c.Ports {
				if p.Name != "" {
					ports[p.Name] = true
				}
			}
			probes := []struct {
				name  string
				probe *corev1.Probe
			}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}}
			for _, p := range probes {
				if p.probe == nil {
					if p.name != "startupProbe" {
						add(field+"."+p.name, "container %q has no %s", c.Name, p.name)
					}
					continue
				}
				if port, ok := probePort(p.probe); ok && port.Type == intstr.String && !ports[port.StrVal] {
					add(field+"."+p.name, "port %q is not a named port of container %q", port.StrVal, c.Name)
				}
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					add(field+".resources.requests."+string(r), "container %q has no %s request", c.Name, r)
				}
			}
		}
		for i, e := range c.Env {
			f := fmt.Sprintf("%s.env[%d]", field, i)
			if e.Value != "" && sensitive(e.Name) {
				add(f, "%s is set to a literal value; take it from a Secret (valueFrom.secretKeyRef)", e.Name)
			}
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				ref(f+".valueFrom.configMapKeyRef", "ConfigMap", configMaps, r.Name, r.Key, r.Optional)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				ref(f+".valueFrom.secretKeyRef", "Secret", secrets, r.Name, r.Key, r.Optional)
			}
		}
		for i, e := range c.EnvFrom {
			f := fmt.Sprintf("%s.envFrom[%d]", field, i)
			if r := e.ConfigMapRef; r != nil {
				ref(f+".configMapRef", "ConfigMap", configMaps, r.Name, "", r.Optional)
			}
			if r := e.SecretRef; r != nil {
				ref(f+".secretRef", "Secret", secrets, r.Name, "", r.Optional)
			}
		}
	}
	spec := t.path + ".spec"
	for i := range t.spec.InitContainers {
		checkContainer(fmt.Sprintf("%s.initContainers[%d]", spec, i), &t.spec.InitContainers[i], false)
	}
	for i := range t.spec.Containers {
		checkContainer(fmt.Sprintf("%s.containers[%d]", spec, i), &t.spec.Containers[i], true)
	}
	for i, v := range t.spec.Volumes {
		f := fmt.Sprintf("%s.volumes[%d]", spec, i)
		if v.ConfigMap != nil {
			ref(f+".configMap", "ConfigMap", configMaps, v.ConfigMap.Name, "", v.ConfigMap.Optional)
		}
		if v.Secret != nil {
			ref(f+".secret", "Secret", secrets, v.Secret.SecretName, "", v.Secret.Optional)
		}
		if v.Projected != nil {
			for j, s := range v.Projected.Sources {
				g := fmt.Sprintf("%s.projected.sources[%d]", f, j)
				if s.ConfigMap != nil {
					ref(g+".configMap", "ConfigMap", configMaps, s.ConfigMap.Name, "", s.ConfigMap.Optional)
				}
				if s.Secret != nil {
					ref(g+".secret", "Secret", secrets, s.Secret.Name, "", s.Secret.Optional)
				}
			}
		}
	}
	return problems
}

func probePort(p *corev1.Probe) (intstr.IntOrString, bool) {
	switch {
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, true
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, true
	}
	return intstr.IntOrString{}, false
}

// lintService checks that a Service with a selector selects some pod template
// of the build, and that a named targetPort is a port of the pods it selects:
// either mistake leaves the Service without endpoints.
func lintService(m Manifest, svc *corev1.Service, templates []podTemplate) []Problem {
	if len(svc.Spec.Selector) == 0 {
		return nil // endpoints managed elsewhere
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	var selected []podTemplate
	for _, t := range templates {
		if t.namespace == m.Namespace && selector.Matches(labels.Set(t.labels)) {
			selected = append(selected, t)
		}
	}
	if len(selected) == 0 {
		return []Problem{{m.ID, "spec.selector", fmt.Sprintf("%s selects no pod template of this build", selector)}}
	}
	var problems []Problem
	for i, p := range svc.Spec.Ports {
		if p.TargetPort.Type != intstr.String {
			continue
		}
		for _, t := range selected {
			if !hasNamedPort(t.spec, p.TargetPort.StrVal) {
				problems = append(problems, Problem{m.ID, fmt.Sprintf("spec.ports[%d].targetPort", i),
					fmt.Sprintf("%q is not a named container port of %s", p.TargetPort.StrVal, t.manifest)})
			}
		}
	}
	return problems
}

func hasNamedPort(spec *corev1.PodSpec, name string) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}
