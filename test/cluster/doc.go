// Package cluster tests the operator and the data plane together against a real API server
// (envtest): the controllers run in-process, the data plane is the real binary in cluster mode,
// following the snapshot Secret through a kubeconfig. The tests hold a steady load while CRs
// change, the snapshot Secret is damaged by hand and the manager restarts, and count every reply.
//
// They need KUBEBUILDER_ASSETS (`make test`, or `KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test
// ./test/cluster/`); without it they fail rather than skip.
package cluster
