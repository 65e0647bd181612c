// Command noop-attestor is an external SPIRE WorkloadAttestor written with
// SPIRE's own plugin SDK that answers every Attest at once with no
// selectors. It is the benchmark's floor for "any external plugin": the cost
// the agent pays for the go-plugin hop itself, with a Go plugin on the other
// end (bench/spire.bench-run.ts).
package main

import (
	"context"

	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

type plugin struct {
	workloadattestorv1.UnimplementedWorkloadAttestorServer
	configv1.UnimplementedConfigServer
}

var empty = &workloadattestorv1.AttestResponse{}

func (plugin) Attest(context.Context, *workloadattestorv1.AttestRequest) (*workloadattestorv1.AttestResponse, error) {
	return empty, nil
}

func (plugin) Configure(context.Context, *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	return &configv1.ConfigureResponse{}, nil
}

func main() {
	p := plugin{}
	pluginmain.Serve(workloadattestorv1.WorkloadAttestorPluginServer(p), configv1.ConfigServiceServer(p))
}
