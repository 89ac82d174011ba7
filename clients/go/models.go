package inferd

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/inferd/inferd/clients/go/inferdv1"
)

// ModelInfo is what the server reports about one declared model (ListModels).
type ModelInfo struct {
	Name, Workflow string
	// State: "DECLARED", "LOADING", "READY", "FAILED" (or "UNSPECIFIED").
	State string
	// Reason: why the setup failed, when State is FAILED.
	Reason string
	// InputFormat: "passthrough", "records" or "tensor".
	InputFormat      string
	Streaming, Unary bool
	SetupMode        string
	Description      string
	Stages           []StageStats
	// Batching is nil when the model's batching is off.
	Batching *BatchingStats
	// Inputs and Outputs: the tensors the model's run takes and gives, where its workflow
	// declares them (once set up).
	Inputs, Outputs []TensorInfo
	// Requests: calls naming the model by final status code ("OK", "CANCELLED", ...).
	Requests map[string]int64
	Nodes    []GraphNode
}

// StageStats is how long a stage takes, over the requests since the server started.
type StageStats struct {
	Stage                 string
	Count                 int64
	MeanMs, LastMs, MaxMs float64
}

// BatchingStats is what a model's dynamic batcher did since the server started.
type BatchingStats struct {
	MaxBatchSize            int64
	MaxDelayMs              float64
	Batches, Rows           int64
	Sizes                   map[int64]int64
	Releases                map[string]int64
	Dropped, Refused        int64
	MeanQueueMs, MaxQueueMs float64
	Waiting, Running        int64
}

// TensorInfo is a tensor a model declares. DType "" means any dtype; a size of -1 any size
// along that axis; AnyShape any shape at all (Shape is then empty).
type TensorInfo struct {
	Name     string
	DType    DType
	Shape    []int64
	AnyShape bool
}

// GraphNode is one node of a graph model.
type GraphNode struct {
	Name, Kind, Target string
	Inputs             []string
	Map, Streams       bool
	OnError            string
	Cases              map[string]string
}

// Models lists the server's declared models, in the configuration's order.
func (c *Client) Models(ctx context.Context, options ...CallOption) ([]ModelInfo, error) {
	ctx, cancel := c.callContext(ctx, c.settings(options), true)
	defer cancel()
	var trailers metadata.MD
	resp, err := c.stub.ListModels(ctx, &pb.ListModelsRequest{}, grpc.Trailer(&trailers))
	if err != nil {
		return nil, fromRPC(err, trailers)
	}
	models := make([]ModelInfo, len(resp.GetModels()))
	for i, m := range resp.GetModels() {
		models[i] = modelInfo(m)
	}
	return models, nil
}

func modelInfo(m *pb.ModelInfo) ModelInfo {
	info := ModelInfo{
		Name: m.GetName(), Workflow: m.GetWorkflow(),
		State:  strings.TrimPrefix(m.GetState().String(), "MODEL_STATE_"),
		Reason: m.GetReason(), InputFormat: m.GetInputFormat(), Streaming: m.GetStreaming(), Unary: m.GetUnary(),
		SetupMode: m.GetSetupMode(), Description: m.GetDescription(), Requests: map[string]int64{},
	}
	for _, s := range m.GetStages() {
		info.Stages = append(info.Stages, StageStats{
			Stage: s.GetStage(), Count: int64(s.GetCount()), MeanMs: s.GetMeanMs(), LastMs: s.GetLastMs(), MaxMs: s.GetMaxMs(),
		})
	}
	if b := m.GetBatching(); b != nil {
		stats := &BatchingStats{
			MaxBatchSize: int64(b.GetMaxBatchSize()), MaxDelayMs: b.GetMaxDelayMs(),
			Batches: int64(b.GetBatches()), Rows: int64(b.GetRows()),
			Sizes: map[int64]int64{}, Releases: map[string]int64{},
			Dropped: int64(b.GetDropped()), Refused: int64(b.GetRefused()),
			MeanQueueMs: b.GetMeanQueueMs(), MaxQueueMs: b.GetMaxQueueMs(),
			Waiting: int64(b.GetWaiting()), Running: int64(b.GetRunning()),
		}
		for size, n := range b.GetSizes() {
			stats.Sizes[int64(size)] = int64(n)
		}
		for why, n := range b.GetReleases() {
			stats.Releases[why] = int64(n)
		}
		info.Batching = stats
	}
	for _, t := range m.GetInputs() {
		info.Inputs = append(info.Inputs, tensorInfo(t))
	}
	for _, t := range m.GetOutputs() {
		info.Outputs = append(info.Outputs, tensorInfo(t))
	}
	for code, n := range m.GetRequests() {
		info.Requests[code] = int64(n)
	}
	for _, n := range m.GetNodes() {
		info.Nodes = append(info.Nodes, GraphNode{
			Name: n.GetName(), Kind: n.GetKind(), Target: n.GetTarget(), Inputs: n.GetInputs(),
			Map: n.GetMap(), Streams: n.GetStreams(), OnError: n.GetOnError(), Cases: n.GetCases(),
		})
	}
	return info
}

func tensorInfo(t *pb.TensorInfo) TensorInfo {
	return TensorInfo{Name: t.GetName(), DType: dtypeFromWire[t.GetDtype()], Shape: t.GetShape(), AnyShape: t.GetAnyShape()}
}
