package inferd

// Unit tests of the codec, with no server: tensors of every dtype to and from the wire,
// float16, Struct and JSON conversion, and errors rebuilt from grpc-status-details-bin.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/inferd/inferd/clients/go/inferdv1"
)

// roundTrip sends tensors through the protobuf wire format and back.
func roundTrip(t *testing.T, tensors ...*Tensor) []*Tensor {
	t.Helper()
	payload, err := Tensors(tensors).payload()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	var back pb.Payload
	if err := proto.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	out, err := outputFromWire(&back)
	if err != nil {
		t.Fatal(err)
	}
	if out.Kind != KindTensors {
		t.Fatalf("kind %d", out.Kind)
	}
	return out.Tensors
}

func mustTensor(t *testing.T, name string, shape []int, data any) *Tensor {
	t.Helper()
	tensor, err := NewTensor(name, shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return tensor
}

func TestTensorEveryDtypeRoundTrip(t *testing.T) {
	cases := []struct {
		dtype DType
		shape []int
		data  any
		wire  []byte // the little-endian bytes the proto says
	}{
		{Bool, []int{3}, []bool{true, false, true}, []byte{1, 0, 1}},
		{Int8, []int{2}, []int8{-128, 127}, []byte{0x80, 0x7f}},
		{Uint8, []int{2}, []uint8{0, 255}, []byte{0, 0xff}},
		{Int16, []int{2}, []int16{-32768, -2}, []byte{0, 0x80, 0xfe, 0xff}},
		{Uint16, []int{1}, []uint16{0x1234}, []byte{0x34, 0x12}},
		{Int32, []int{2}, []int32{math.MinInt32, 1}, []byte{0, 0, 0, 0x80, 1, 0, 0, 0}},
		{Uint32, []int{1}, []uint32{math.MaxUint32}, []byte{0xff, 0xff, 0xff, 0xff}},
		{Int64, []int{2, 2}, []int64{math.MinInt64, -1, 1, math.MaxInt64}, nil},
		{Uint64, []int{1}, []uint64{math.MaxUint64}, bytes.Repeat([]byte{0xff}, 8)},
		{Float16, []int{2}, []Half{HalfFromFloat32(0.5), HalfFromFloat32(-2)}, []byte{0x00, 0x38, 0x00, 0xc0}},
		{Float32, []int{2}, []float32{1.5, -0.25}, []byte{0, 0, 0xc0, 0x3f, 0, 0, 0x80, 0xbe}},
		{Float64, []int{1, 2}, []float64{math.Pi, -1e300}, nil},
		{String, []int{3}, []string{"a", "bé", "日本"}, append(append([]byte{1, 0, 0, 0, 'a', 3, 0, 0, 0}, "bé"...), append([]byte{6, 0, 0, 0}, "日本"...)...)},
		{Float32, []int{}, []float32{7}, []byte{0, 0, 0xe0, 0x40}},                 // a scalar
		{Float32, []int{0, 3}, []float32{}, []byte{}},                              // 0-sized
		{String, []int{2, 0}, []string{}, nil},                                     // 0-sized strings
		{Int64, []int{}, []int64{9007199254740993}, nil},                           // past 2^53: exact
		{String, []int{2}, []string{"", "x"}, []byte{0, 0, 0, 0, 1, 0, 0, 0, 'x'}}, // an empty string
	}
	for i, c := range cases {
		name := fmt.Sprintf("t%d", i)
		tensor := mustTensor(t, name, c.shape, c.data)
		if tensor.DType != c.dtype {
			t.Errorf("%s: dtype %s, want %s", name, tensor.DType, c.dtype)
		}
		wire, err := tensor.toWire()
		if err != nil {
			t.Fatal(err)
		}
		if c.wire != nil && !bytes.Equal(wire.Data, c.wire) {
			t.Errorf("%s %s: wire % x, want % x", name, c.dtype, wire.Data, c.wire)
		}
		if wire.Dtype != dtypeToWire[c.dtype] || len(wire.Shape) != len(c.shape) {
			t.Errorf("%s: wire dtype %v shape %v", name, wire.Dtype, wire.Shape)
		}
		back := roundTrip(t, tensor)[0]
		if back.Name != name || back.DType != c.dtype || !reflect.DeepEqual(back.Shape, c.shape) || !reflect.DeepEqual(back.Data, c.data) {
			t.Errorf("%s: got %s %s%v %#v, want %s%v %#v", name, back.Name, back.DType, back.Shape, back.Data, c.dtype, c.shape, c.data)
		}
	}
}

func TestTensorsKeepOrderAndNames(t *testing.T) {
	back := roundTrip(t, mustTensor(t, "b", []int{1}, []int32{1}), mustTensor(t, "a", []int{1}, []string{"x"}))
	if len(back) != 2 || back[0].Name != "b" || back[1].Name != "a" {
		t.Fatalf("%v", back)
	}
	out := &Output{Kind: KindTensors, Tensors: back}
	if out.Tensor("a").DType != String || out.Tensor("nope") != nil {
		t.Fatal("Output.Tensor")
	}
}

func TestFloat16GivenAsFloat32(t *testing.T) {
	tensor := &Tensor{Name: "h", DType: Float16, Shape: []int{3}, Data: []float32{0.5, -2, 65504}}
	back := roundTrip(t, tensor)[0]
	if want := []Half{0x3800, 0xc000, 0x7bff}; !reflect.DeepEqual(back.Data, want) {
		t.Fatalf("%#v", back.Data)
	}
	if got := back.Floats(); !reflect.DeepEqual(got, []float64{0.5, -2, 65504}) {
		t.Fatalf("%v", got)
	}
}

func TestHalf(t *testing.T) {
	for _, c := range []struct {
		f float32
		h Half
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000}, {1, 0x3c00}, {-1, 0xbc00}, {0.5, 0x3800},
		{65504, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{0x1p-14, 0x0400}, {0x1p-24, 0x0001}, {0x1p-25, 0}, {0x1.8p-25, 0x0001}, {0x3p-25, 0x0002}, // subnormals; ties to even
		{1 + 0x1p-11, 0x3c00}, {1 + 0x3p-11, 0x3c02}, {1 + 0x1p-11 + 0x1p-20, 0x3c01}, // ties to even, above the tie
		{0x1.ffcp-15, 0x0400}, // rounds up from the subnormals into the normals
	} {
		if got := HalfFromFloat32(c.f); got != c.h {
			t.Errorf("HalfFromFloat32(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	if h := HalfFromFloat32(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN: %#04x", h)
	}
	// Every half is exactly a float32, and comes back as itself.
	for bits := 0; bits < 1<<16; bits++ {
		h := Half(bits)
		f := h.Float32()
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("%#04x: NaN became %g", bits, f)
			}
			continue
		}
		if back := HalfFromFloat32(f); back != h {
			t.Fatalf("%#04x -> %g -> %#04x", bits, f, back)
		}
	}
}

func TestTensorErrors(t *testing.T) {
	if _, err := NewTensor("x", []int{2, 2}, []float32{1, 2, 3}); err == nil {
		t.Error("a shape that does not hold the data")
	}
	if _, err := NewTensor("x", []int{1}, []int{1}); err == nil {
		t.Error("[]int has no dtype")
	}
	if _, err := (&Tensor{Name: "x", DType: Int32, Shape: []int{1}, Data: []int64{1}}).toWire(); err == nil {
		t.Error("dtype and data disagree")
	}
	if _, err := tensorFromWire(&pb.Tensor{Name: "x", Dtype: pb.DataType_DATA_TYPE_INT32, Shape: []int64{2}, Data: []byte{1, 0, 0, 0}}); err == nil {
		t.Error("too few bytes")
	}
	if _, err := tensorFromWire(&pb.Tensor{Name: "x", Dtype: pb.DataType_DATA_TYPE_STRING, Shape: []int64{1}, Data: []byte{5, 0, 0, 0, 'a'}}); err == nil {
		t.Error("a string past the data's end")
	}
	if _, err := tensorFromWire(&pb.Tensor{Name: "x", Dtype: pb.DataType_DATA_TYPE_UNSPECIFIED}); err == nil {
		t.Error("an unspecified dtype")
	}
}

func TestInputs(t *testing.T) {
	p, _ := JSON([]map[string]any{{"a": 1, "b": 2.5}}).payload()
	if got := string(p.GetJson()); got != `[{"a":1,"b":2.5}]` {
		t.Errorf("JSON: %s", got)
	}
	p, _ = JSONText(`[{"a": 1,,}]`).payload()
	if got := string(p.GetJson()); got != `[{"a": 1,,}]` {
		t.Errorf("JSONText: %s", got)
	}
	p, _ = Text("héllo").payload()
	if p.GetText() != "héllo" {
		t.Error("Text")
	}
	p, _ = Blob{Data: []byte{0, 1, 255}, ContentType: "image/png"}.payload()
	if !bytes.Equal(p.GetBlob().GetData(), []byte{0, 1, 255}) || p.GetBlob().GetContentType() != "image/png" {
		t.Error("Blob")
	}
	if _, err := JSON(math.Inf(1)).payload(); err == nil {
		t.Error("JSON of +Inf")
	}
}

func TestStructConversion(t *testing.T) {
	in := map[string]any{
		"n": 3, "i8": int8(-4), "u64": uint64(1) << 40, "f": 0.5, "whole": 2.0, "big": float64(1 << 53),
		"s": "x", "b": true, "null": nil, "l": []any{1, "two", []int{3}}, "o": map[string]any{"k": int64(1)},
		"strings": []string{"a"}, "num": json.Number("7"),
	}
	s, err := ToStruct(in)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := proto.Marshal(s)
	back := s.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(raw, back); err != nil {
		t.Fatal(err)
	}
	got := FromStruct(s)
	want := map[string]any{
		"n": int64(3), "i8": int64(-4), "u64": int64(1) << 40, "f": 0.5, "whole": int64(2), "big": float64(1 << 53),
		"s": "x", "b": true, "null": nil, "l": []any{int64(1), "two", []any{int64(3)}}, "o": map[string]any{"k": int64(1)},
		"strings": []any{"a"}, "num": int64(7),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
	if _, err := ToStruct(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("a channel is no Value")
	}
	if _, err := ToStruct(map[string]any{"m": map[int]int{1: 1}}); err == nil {
		t.Error("map keys must be strings")
	}
	if len(FromStruct(nil)) != 0 {
		t.Error("nil Struct")
	}
}

func TestDecodeJSON(t *testing.T) {
	got, err := DecodeJSON([]byte(`{"a":[1,2.5,null,"x",true,-3,1e2,18446744073709551615,9007199254740993],"b":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": []any{int64(1), 2.5, nil, "x", true, int64(-3), 100.0, uint64(math.MaxUint64), int64(9007199254740993)}, "b": map[string]any{}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%#v", got)
	}
	if _, err := DecodeJSON([]byte(`[1] [2]`)); err == nil {
		t.Error("trailing data")
	}
	out := &Output{Kind: KindJSON, JSON: []byte(`[{"label":"class_0"}]`)}
	var records []struct{ Label string }
	if err := out.Decode(&records); err != nil || records[0].Label != "class_0" {
		t.Errorf("Decode: %v %v", records, err)
	}
}

// wireStatus: the status as it crosses the wire in grpc-status-details-bin and back.
func wireStatus(t *testing.T, code codes.Code, message string, details ...proto.Message) *status.Status {
	t.Helper()
	st := status.New(code, message)
	if len(details) > 0 {
		var err error
		var v1 []protoadapt.MessageV1
		for _, d := range details {
			v1 = append(v1, protoadapt.MessageV1Of(d))
		}
		if st, err = st.WithDetails(v1...); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := proto.Marshal(st.Proto())
	if err != nil {
		t.Fatal(err)
	}
	var back spb.Status
	if err := proto.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	return status.FromProto(&back)
}

func TestErrorFromRecordError(t *testing.T) {
	st := wireStatus(t, codes.InvalidArgument, "record 1: field 'malic_acid': missing",
		&errdetails.ErrorInfo{Domain: "inferd", Reason: "RecordError", Metadata: map[string]string{"record": "1", "path": "malic_acid", "offset": "x"}})
	err := fromRPC(st.Err(), metadata.Pairs("trace-id", "abc"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T", err)
	}
	if e.Code != codes.InvalidArgument || e.Reason != ReasonRecordError || e.Domain != "inferd" || e.Message != "record 1: field 'malic_acid': missing" {
		t.Errorf("%+v", e)
	}
	want := map[string]any{"record": int64(1), "path": "malic_acid", "offset": "x", "reason": "RecordError", "trace_id": "abc"}
	if !reflect.DeepEqual(e.Details, want) {
		t.Errorf("details %#v", e.Details)
	}
	if n, ok := e.Int("record"); !ok || n != 1 || e.String("path") != "malic_acid" {
		t.Error("Int/String")
	}
	if status.Code(err) != codes.InvalidArgument || !IsReason(fmt.Errorf("wrapped: %w", err), ReasonRecordError) {
		t.Error("status.Code / IsReason")
	}
}

func TestErrorRetryAfter(t *testing.T) {
	info := &errdetails.ErrorInfo{Domain: "inferd", Reason: "ResourceExhausted", Metadata: map[string]string{"model": "busy"}}
	retry := &errdetails.RetryInfo{RetryDelay: durationpb.New(250 * time.Millisecond)}
	e := fromRPC(wireStatus(t, codes.ResourceExhausted, "busy: limit 1", info, retry).Err(), nil).(*Error)
	if e.Reason != ReasonResourceExhausted || e.RetryAfterMs() != 250 || e.String("model") != "busy" {
		t.Errorf("RetryInfo: %+v", e)
	}
	e = fromRPC(wireStatus(t, codes.ResourceExhausted, "busy", info).Err(), metadata.Pairs("retry-after-ms", "300")).(*Error)
	if e.RetryAfterMs() != 300 {
		t.Errorf("trailer: %+v", e.Details)
	}
	e = fromRPC(wireStatus(t, codes.ResourceExhausted, "busy").Err(), nil).(*Error)
	if e.RetryAfterMs() != 100 {
		t.Errorf("default: %+v", e.Details)
	}
}

func TestErrorClassFallbacks(t *testing.T) {
	for _, c := range []struct {
		code   codes.Code
		info   *errdetails.ErrorInfo
		reason string
	}{
		{codes.NotFound, nil, ReasonModelNotFound},
		{codes.Unauthenticated, nil, ReasonUnauthenticated},
		{codes.DeadlineExceeded, nil, ReasonDeadlineExceeded},
		{codes.Unknown, nil, ReasonUnknown},
		{codes.FailedPrecondition, &errdetails.ErrorInfo{Domain: "inferd", Reason: "ModelFailed"}, ReasonModelFailed},
		// a class that does not go with the code: the code's class
		{codes.NotFound, &errdetails.ErrorInfo{Domain: "inferd", Reason: "RecordError"}, ReasonModelNotFound},
		// another domain's reason is no inferd class
		{codes.InvalidArgument, &errdetails.ErrorInfo{Domain: "example.com", Reason: "TensorError"}, ReasonInvalidInput},
	} {
		var details []proto.Message
		if c.info != nil {
			details = append(details, c.info)
		}
		e := fromRPC(wireStatus(t, c.code, "", details...).Err(), nil).(*Error)
		if e.Reason != c.reason || e.Code != c.code || e.Message != CodeName(c.code) {
			t.Errorf("%v %v: %+v", c.code, c.info, e)
		}
	}
	if e := fromRPC(context.DeadlineExceeded, nil).(*Error); e.Code != codes.DeadlineExceeded {
		t.Error("context.DeadlineExceeded")
	}
	plain := errors.New("not a status")
	if fromRPC(plain, nil) != plain || fromRPC(nil, nil) != nil {
		t.Error("other errors pass through")
	}
}
