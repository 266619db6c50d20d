// Package kubeclient builds the data plane's Kubernetes API clients from the light pieces of
// client-go: the REST client, kubeconfig loading and nothing else. Each client speaks one API
// group version and its scheme knows only the kinds read or written there (Secrets in core/v1,
// AIBudgets in ai.nself.org/v1alpha1).
//
// The generated clientset (a typed client and apply configurations for every built-in API group)
// and controller-runtime's client are what the manager uses; linked into the data plane they made
// its binary ~40 MB (45%) larger and its idle resident memory 8–11 MiB higher (the pages of the
// binary that package initialisation touches), for two resources. The data plane must not import
// either (cmd/dataplane's dependency test checks it).
package kubeclient

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// LoadConfig returns the configuration of the cluster named by the kubeconfig file, or the pod's
// in-cluster configuration (service account token and CA) when kubeconfig is empty.
func LoadConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load the cluster config: %w", err)
	}
	return cfg, nil
}

// ForGroupVersion returns a REST client of cfg's cluster for gv, whose objects are the kinds
// addToScheme registers (it must also register the meta/v1 kinds of gv, as generated and
// controller-runtime AddToScheme functions do: Status, ListOptions, DeleteOptions…).
func ForGroupVersion(cfg *rest.Config, gv schema.GroupVersion, addToScheme func(*k8sruntime.Scheme) error) (*rest.RESTClient, error) {
	scheme := k8sruntime.NewScheme()
	if err := addToScheme(scheme); err != nil {
		return nil, fmt.Errorf("failed to register the kinds of %s: %w", gv, err)
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	if gv.Group == "" {
		c.APIPath = "/api"
	}
	// As the generated clients do: JSON by default, CBOR only when client-go's feature gate says so.
	c.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(scheme, serializer.NewCodecFactory(scheme)).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("failed to build the %s API client: %w", gv, err)
	}
	return rc, nil
}

// Secrets reads the Secrets of one namespace: the subset of the generated client's
// SecretInterface that the snapshot watch needs (List, Watch, Get), with the same requests
// (protobuf preferred, as the generated client does for built-in kinds; the list and watch
// timeouts the reflector asks for).
type Secrets struct {
	client    rest.Interface
	namespace string
}

// NewCore returns a core/v1 REST client whose scheme knows the core/v1 kinds.
func NewCore(cfg *rest.Config) (*rest.RESTClient, error) {
	return ForGroupVersion(cfg, corev1.SchemeGroupVersion, corev1.AddToScheme)
}

// NewSecrets returns the Secrets of namespace ns over core, a core/v1 client ([NewCore]).
func NewSecrets(core rest.Interface, ns string) *Secrets {
	return &Secrets{client: core, namespace: ns}
}

func (s *Secrets) request() *rest.Request {
	return s.client.Get().UseProtobufAsDefault().Namespace(s.namespace).Resource("secrets")
}

// List lists the namespace's Secrets that opts selects.
func (s *Secrets) List(ctx context.Context, opts metav1.ListOptions) (*corev1.SecretList, error) {
	list := &corev1.SecretList{}
	err := s.request().VersionedParams(&opts, metav1.ParameterCodec).Timeout(timeout(opts)).Do(ctx).Into(list)
	if err != nil {
		return nil, err
	}
	return list, nil
}

// Watch watches the namespace's Secrets that opts selects.
func (s *Secrets) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return s.request().VersionedParams(&opts, metav1.ParameterCodec).Timeout(timeout(opts)).Watch(ctx)
}

// Get reads the Secret called name.
func (s *Secrets) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	if err := s.request().Name(name).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(sec); err != nil {
		return nil, err
	}
	return sec, nil
}

// timeout is the client-side bound of a list or watch: the server-side one the caller set.
func timeout(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}
