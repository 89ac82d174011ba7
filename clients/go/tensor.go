package inferd

import (
	"encoding/binary"
	"fmt"
	"math"

	pb "github.com/inferd/inferd/clients/go/inferdv1"
)

// DType is a tensor's element type, named as numpy names it ("float32", "string", ...).
type DType string

// The element types of inferd.v1.DataType.
const (
	Bool    DType = "bool"
	Int8    DType = "int8"
	Int16   DType = "int16"
	Int32   DType = "int32"
	Int64   DType = "int64"
	Uint8   DType = "uint8"
	Uint16  DType = "uint16"
	Uint32  DType = "uint32"
	Uint64  DType = "uint64"
	Float16 DType = "float16"
	Float32 DType = "float32"
	Float64 DType = "float64"
	String  DType = "string"
)

var dtypeToWire = map[DType]pb.DataType{
	Bool: pb.DataType_DATA_TYPE_BOOL, Int8: pb.DataType_DATA_TYPE_INT8, Int16: pb.DataType_DATA_TYPE_INT16,
	Int32: pb.DataType_DATA_TYPE_INT32, Int64: pb.DataType_DATA_TYPE_INT64, Uint8: pb.DataType_DATA_TYPE_UINT8,
	Uint16: pb.DataType_DATA_TYPE_UINT16, Uint32: pb.DataType_DATA_TYPE_UINT32, Uint64: pb.DataType_DATA_TYPE_UINT64,
	Float16: pb.DataType_DATA_TYPE_FLOAT16, Float32: pb.DataType_DATA_TYPE_FLOAT32, Float64: pb.DataType_DATA_TYPE_FLOAT64,
	String: pb.DataType_DATA_TYPE_STRING,
}

var dtypeFromWire = func() map[pb.DataType]DType {
	m := make(map[pb.DataType]DType, len(dtypeToWire))
	for k, v := range dtypeToWire {
		m[v] = k
	}
	return m
}()

// Half is an IEEE 754 half-precision float (numpy's float16), held as its 16 bits.
type Half uint16

// HalfFromFloat32 rounds f to the nearest half (ties to even); out-of-range values become ±Inf.
func HalfFromFloat32(f float32) Half {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return Half(sign | 0x7e00)
		}
		return Half(sign | 0x7c00)
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return Half(sign | 0x7c00)
	}
	if e <= 0 { // subnormal half (or zero)
		if e < -10 {
			return Half(sign)
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return Half(sign | uint16(half))
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, up to Inf: correct
	}
	return Half(sign | uint16(half))
}

// Float32 is h's exact value as a float32.
func (h Half) Float32() float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Tensor is a dense tensor: its elements, flat in C (row-major) order, in a Go slice whose type
// goes with DType: []bool, []int8, []int16, []int32, []int64, []uint8, []uint16, []uint32,
// []uint64, []Half, []float32, []float64 or []string. (A float16 tensor may also be given as
// []float32: it is rounded to half precision when sent.) An empty Shape is a scalar (one element).
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  any
}

// NewTensor is a tensor of data's element type (a []Half is float16, a []float32 float32, ...).
func NewTensor(name string, shape []int, data any) (*Tensor, error) {
	dtype, ok := dtypeOf(data)
	if !ok {
		return nil, fmt.Errorf("inferd: tensor %q: unsupported element slice %T", name, data)
	}
	t := &Tensor{Name: name, DType: dtype, Shape: shape, Data: data}
	if n, count := t.Len(), sliceLen(data); n != count {
		return nil, fmt.Errorf("inferd: tensor %q: shape %v holds %d elements, data has %d", name, shape, n, count)
	}
	return t, nil
}

// Len is the number of elements the shape holds (1 for a scalar).
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

func dtypeOf(data any) (DType, bool) {
	switch data.(type) {
	case []bool:
		return Bool, true
	case []int8:
		return Int8, true
	case []int16:
		return Int16, true
	case []int32:
		return Int32, true
	case []int64:
		return Int64, true
	case []uint8:
		return Uint8, true
	case []uint16:
		return Uint16, true
	case []uint32:
		return Uint32, true
	case []uint64:
		return Uint64, true
	case []Half:
		return Float16, true
	case []float32:
		return Float32, true
	case []float64:
		return Float64, true
	case []string:
		return String, true
	}
	return "", false
}

func sliceLen(data any) int {
	switch d := data.(type) {
	case []bool:
		return len(d)
	case []int8:
		return len(d)
	case []int16:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []uint8:
		return len(d)
	case []uint16:
		return len(d)
	case []uint32:
		return len(d)
	case []uint64:
		return len(d)
	case []Half:
		return len(d)
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []string:
		return len(d)
	}
	return -1
}

// Floats is the tensor's numeric elements as float64s (bools as 0 and 1); nil for strings.
func (t *Tensor) Floats() []float64 {
	var out []float64
	switch d := t.Data.(type) {
	case []bool:
		for _, v := range d {
			if v {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
	case []int8:
		out = floats(d)
	case []int16:
		out = floats(d)
	case []int32:
		out = floats(d)
	case []int64:
		out = floats(d)
	case []uint8:
		out = floats(d)
	case []uint16:
		out = floats(d)
	case []uint32:
		out = floats(d)
	case []uint64:
		out = floats(d)
	case []Half:
		for _, v := range d {
			out = append(out, float64(v.Float32()))
		}
	case []float32:
		out = floats(d)
	case []float64:
		out = append(out, d...)
	default:
		return nil
	}
	if out == nil {
		out = []float64{}
	}
	return out
}

func floats[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32](values []T) []float64 {
	out := make([]float64, len(values))
	for i, v := range values {
		out[i] = float64(v)
	}
	return out
}

// toWire encodes t as an inferd.v1.Tensor (little-endian elements, strings length-prefixed).
func (t *Tensor) toWire() (*pb.Tensor, error) {
	dtype := t.DType
	if dtype == "" {
		var ok bool
		if dtype, ok = dtypeOf(t.Data); !ok {
			return nil, fmt.Errorf("inferd: tensor %q: unsupported element slice %T", t.Name, t.Data)
		}
	}
	wire, ok := dtypeToWire[dtype]
	if !ok {
		return nil, fmt.Errorf("inferd: tensor %q: unknown dtype %q", t.Name, dtype)
	}
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		if d < 0 {
			return nil, fmt.Errorf("inferd: tensor %q: negative size in shape %v", t.Name, t.Shape)
		}
		shape[i] = int64(d)
	}
	data := t.Data
	if f, isFloat32 := data.([]float32); isFloat32 && dtype == Float16 {
		halves := make([]Half, len(f))
		for i, v := range f {
			halves[i] = HalfFromFloat32(v)
		}
		data = halves
	}
	if got, _ := dtypeOf(data); got != dtype {
		return nil, fmt.Errorf("inferd: tensor %q: dtype %s does not go with data of type %T", t.Name, dtype, t.Data)
	}
	if n, count := t.Len(), sliceLen(data); n != count {
		return nil, fmt.Errorf("inferd: tensor %q: shape %v holds %d elements, data has %d", t.Name, t.Shape, n, count)
	}
	return &pb.Tensor{Name: t.Name, Dtype: wire, Shape: shape, Data: encodeElements(data)}, nil
}

func encodeElements(data any) []byte {
	le := binary.LittleEndian
	switch d := data.(type) {
	case []bool:
		out := make([]byte, len(d))
		for i, v := range d {
			if v {
				out[i] = 1
			}
		}
		return out
	case []int8:
		out := make([]byte, len(d))
		for i, v := range d {
			out[i] = byte(v)
		}
		return out
	case []uint8:
		return append([]byte{}, d...)
	case []int16:
		out := make([]byte, 2*len(d))
		for i, v := range d {
			le.PutUint16(out[2*i:], uint16(v))
		}
		return out
	case []uint16:
		out := make([]byte, 2*len(d))
		for i, v := range d {
			le.PutUint16(out[2*i:], v)
		}
		return out
	case []Half:
		out := make([]byte, 2*len(d))
		for i, v := range d {
			le.PutUint16(out[2*i:], uint16(v))
		}
		return out
	case []int32:
		out := make([]byte, 4*len(d))
		for i, v := range d {
			le.PutUint32(out[4*i:], uint32(v))
		}
		return out
	case []uint32:
		out := make([]byte, 4*len(d))
		for i, v := range d {
			le.PutUint32(out[4*i:], v)
		}
		return out
	case []float32:
		out := make([]byte, 4*len(d))
		for i, v := range d {
			le.PutUint32(out[4*i:], math.Float32bits(v))
		}
		return out
	case []int64:
		out := make([]byte, 8*len(d))
		for i, v := range d {
			le.PutUint64(out[8*i:], uint64(v))
		}
		return out
	case []uint64:
		out := make([]byte, 8*len(d))
		for i, v := range d {
			le.PutUint64(out[8*i:], v)
		}
		return out
	case []float64:
		out := make([]byte, 8*len(d))
		for i, v := range d {
			le.PutUint64(out[8*i:], math.Float64bits(v))
		}
		return out
	case []string:
		var out []byte
		for _, v := range d {
			out = le.AppendUint32(out, uint32(len(v)))
			out = append(out, v...)
		}
		return out
	}
	panic("unreachable")
}

var itemSize = map[DType]int{
	Bool: 1, Int8: 1, Uint8: 1, Int16: 2, Uint16: 2, Float16: 2,
	Int32: 4, Uint32: 4, Float32: 4, Int64: 8, Uint64: 8, Float64: 8,
}

// tensorFromWire decodes an inferd.v1.Tensor into a Tensor with a Go slice of its elements.
func tensorFromWire(w *pb.Tensor) (*Tensor, error) {
	dtype, ok := dtypeFromWire[w.GetDtype()]
	if !ok {
		return nil, fmt.Errorf("inferd: tensor %q: unknown dtype %v", w.GetName(), w.GetDtype())
	}
	t := &Tensor{Name: w.GetName(), DType: dtype, Shape: make([]int, len(w.GetShape()))}
	for i, d := range w.GetShape() {
		if d < 0 {
			return nil, fmt.Errorf("inferd: tensor %q: negative size in shape %v", t.Name, w.GetShape())
		}
		t.Shape[i] = int(d)
	}
	n, raw := t.Len(), w.GetData()
	if dtype == String {
		values := make([]string, 0, n)
		for len(raw) > 0 {
			if len(raw) < 4 {
				return nil, fmt.Errorf("inferd: tensor %q: truncated string length", t.Name)
			}
			size := binary.LittleEndian.Uint32(raw)
			raw = raw[4:]
			if uint64(size) > uint64(len(raw)) {
				return nil, fmt.Errorf("inferd: tensor %q: string of %d bytes past the data's end", t.Name, size)
			}
			values = append(values, string(raw[:size]))
			raw = raw[size:]
		}
		if len(values) != n {
			return nil, fmt.Errorf("inferd: tensor %q: %d strings for shape %v", t.Name, len(values), t.Shape)
		}
		t.Data = values
		return t, nil
	}
	size := itemSize[dtype]
	if len(raw) != n*size {
		return nil, fmt.Errorf("inferd: tensor %q: %d bytes for %s%v (want %d)", t.Name, len(raw), dtype, t.Shape, n*size)
	}
	le := binary.LittleEndian
	switch dtype {
	case Bool:
		d := make([]bool, n)
		for i := range d {
			d[i] = raw[i] != 0
		}
		t.Data = d
	case Int8:
		d := make([]int8, n)
		for i := range d {
			d[i] = int8(raw[i])
		}
		t.Data = d
	case Uint8:
		t.Data = append(make([]uint8, 0, n), raw...)
	case Int16:
		d := make([]int16, n)
		for i := range d {
			d[i] = int16(le.Uint16(raw[2*i:]))
		}
		t.Data = d
	case Uint16:
		d := make([]uint16, n)
		for i := range d {
			d[i] = le.Uint16(raw[2*i:])
		}
		t.Data = d
	case Float16:
		d := make([]Half, n)
		for i := range d {
			d[i] = Half(le.Uint16(raw[2*i:]))
		}
		t.Data = d
	case Int32:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(le.Uint32(raw[4*i:]))
		}
		t.Data = d
	case Uint32:
		d := make([]uint32, n)
		for i := range d {
			d[i] = le.Uint32(raw[4*i:])
		}
		t.Data = d
	case Float32:
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		t.Data = d
	case Int64:
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(le.Uint64(raw[8*i:]))
		}
		t.Data = d
	case Uint64:
		d := make([]uint64, n)
		for i := range d {
			d[i] = le.Uint64(raw[8*i:])
		}
		t.Data = d
	case Float64:
		d := make([]float64, n)
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		t.Data = d
	}
	return t, nil
}
