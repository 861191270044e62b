// oneDNN 2-D convolution as three XLA FFI handlers for the CPU backend.
//
//   FnnOnednnConvFwd:        x (N,H,W,C), w (kh,kw,C/g,O) -> y  (N,H',W',O)   y  = x ⋆ w
//   FnnOnednnConvBwdData:    dy (N,H',W',O), w            -> dx (N,H,W,C)    dx = (· ⋆ w)ᵀ dy
//   FnnOnednnConvBwdWeights: x, dy                        -> dw (kh,kw,C/g,O) dw = (x ⋆ ·)ᵀ dy
//
// Layouts are fnn's: images NHWC, kernels HWIO (a grouped kernel's O axis is
// group-major: output channel o belongs to group o / (O/g), as in XLA's
// feature_group_count). Attributes: stride_h, stride_w; pad_top, pad_bottom,
// pad_left, pad_right (explicit, >= 0); dil_h, dil_w (XLA's dilation, >= 1;
// oneDNN counts d - 1); groups. Element type: float32 or bfloat16, the same for
// the three buffers; oneDNN accumulates in float32 either way, and a bfloat16
// weight gradient is summed over the chunks in float32 and rounded once.
//
// Images stay NHWC (reordering them would cost as much as the convolution);
// the kernel is reordered into the layout oneDNN's primitive prefers (e.g. a
// blocked OIhw16i16o) and back for the weight gradient.
//
// Threads: XLA's own intra-op pool (the FFI ThreadPool), not oneDNN's. The
// batch is cut into one chunk per pool thread; each chunk runs a single-threaded
// oneDNN primitive (parallel.h), so the convolution shares XLA's threads instead
// of starting an OpenMP team beside them, whose spinning and static split cost
// several times the kernel's own time on a small or busy machine (measured:
// benchmarks/RESULTS.md). A weight gradient sums its chunks' partial gradients.
// Each distinct problem (pass, type, shapes, stride, padding, dilation, groups,
// chunking) builds its primitives once and keeps them for the life of the
// process; buffers come from a per-problem pool, so concurrent calls never
// share one.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "parallel.h"
#include "xla/ffi/api/c_api.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using fnn_onednn::ForEachChunk;
using fnn_onednn::Sequential;
using tag = dnnl::memory::format_tag;

#define FNN_EXPORT extern "C" __attribute__((visibility("default")))
FNN_EXPORT XLA_FFI_Error* FnnOnednnConvFwd(XLA_FFI_CallFrame* call_frame);
FNN_EXPORT XLA_FFI_Error* FnnOnednnConvBwdData(XLA_FFI_CallFrame* call_frame);
FNN_EXPORT XLA_FFI_Error* FnnOnednnConvBwdWeights(XLA_FFI_CallFrame* call_frame);
FNN_EXPORT int FnnOnednnVersion();
FNN_EXPORT int FnnOnednnNativeBfloat16();

namespace {

enum Pass : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

// One convolution problem and its chunking: everything the plan depends on.
struct Problem {
  int64_t pass, bf16, n, h, w, c, o, kh, kw, ho, wo;
  int64_t sh, sw, pt, pb, pl, pr, dh, dw, groups, chunks;
  bool operator==(const Problem& p) const { return std::memcmp(this, &p, sizeof(p)) == 0; }
};

struct ProblemHash {
  size_t operator()(const Problem& p) const {
    const int64_t* v = reinterpret_cast<const int64_t*>(&p);
    size_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(Problem) / sizeof(int64_t); ++i)
      h = (h ^ static_cast<size_t>(v[i])) * 1099511628211ull;
    return h;
  }
};

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<void, FreeDeleter>;

Buffer Allocate(size_t bytes) {
  if (bytes == 0) return Buffer(nullptr);
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (p == nullptr) throw std::bad_alloc();
  return Buffer(p);
}

// float32 -> bfloat16, rounding to nearest even (a NaN stays a quiet NaN).
uint16_t ToBfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The primitive for one chunk size: the convolution and the kernel's reorder
// (HWIO -> the primitive's layout; for the weight gradient, back to HWIO).
struct Primitive {
  dnnl::primitive conv;
  memory::desc in_md, out_md;         // chunk images: the image operand(s) and result
  memory::desc hwio_md, kernel_md;    // fnn's kernel layout and the primitive's
  dnnl::reorder kernel_reorder;       // empty when kernel_md is HWIO
  memory::desc scratch_md;
};

// The kernel in any layout (`tag::any`: the primitive's choice) or in HWIO.
memory::desc KernelDesc(const Problem& p, tag format, memory::data_type dt) {
  const int64_t i = p.c / p.groups, o = p.o, g = p.groups;
  if (format == tag::any) {
    return g == 1 ? memory::desc({o, i, p.kh, p.kw}, dt, tag::any)
                  : memory::desc({g, o / g, i, p.kh, p.kw}, dt, tag::any);
  }
  // HWIO strides (elements): kh -> kw·I·O, kw -> I·O, i -> O, o -> 1.
  if (g == 1) return memory::desc({o, i, p.kh, p.kw}, dt, {1, o, p.kw * i * o, i * o});
  return memory::desc({g, o / g, i, p.kh, p.kw}, dt, {o / g, 1, o, p.kw * i * o, i * o});
}

Primitive BuildPrimitive(const Problem& p, int64_t n) {
  const auto f32 = memory::data_type::f32;
  const auto dt = p.bf16 ? memory::data_type::bf16 : f32;
  const memory::desc x_md({n, p.c, p.h, p.w}, dt, tag::nhwc);
  const memory::desc y_md({n, p.o, p.ho, p.wo}, dt, tag::nhwc);
  const memory::dims strides{p.sh, p.sw}, dilates{p.dh - 1, p.dw - 1};
  const memory::dims pad_l{p.pt, p.pl}, pad_r{p.pb, p.pr};
  const auto alg = dnnl::algorithm::convolution_direct;
  const memory::desc any = KernelDesc(p, tag::any, dt);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

  Primitive prim;
  // the weight gradient's partial sums in float32
  prim.hwio_md = KernelDesc(p, tag::undef, p.pass == kBackwardWeights ? f32 : dt);
  const dnnl::convolution_forward::primitive_desc fwd(
      Engine(), dnnl::prop_kind::forward_training, alg, x_md, any, y_md, strides, dilates,
      pad_l, pad_r, attr);
  if (p.pass == kForward) {
    prim.conv = dnnl::convolution_forward(fwd);
    prim.in_md = x_md, prim.out_md = y_md, prim.kernel_md = fwd.weights_desc();
    prim.scratch_md = fwd.scratchpad_desc();
  } else if (p.pass == kBackwardData) {
    const dnnl::convolution_backward_data::primitive_desc bwd(
        Engine(), alg, x_md, any, y_md, strides, dilates, pad_l, pad_r, fwd, attr);
    prim.conv = dnnl::convolution_backward_data(bwd);
    prim.in_md = y_md, prim.out_md = x_md, prim.kernel_md = bwd.weights_desc();
    prim.scratch_md = bwd.scratchpad_desc();
  } else {
    const dnnl::convolution_backward_weights::primitive_desc bwd(
        Engine(), alg, x_md, KernelDesc(p, tag::any, f32), y_md, strides, dilates, pad_l,
        pad_r, fwd, attr);
    prim.conv = dnnl::convolution_backward_weights(bwd);
    prim.in_md = x_md, prim.out_md = y_md, prim.kernel_md = bwd.diff_weights_desc();
    prim.scratch_md = bwd.scratchpad_desc();
  }
  if (prim.kernel_md != prim.hwio_md) {
    const bool to_hwio = p.pass == kBackwardWeights;
    prim.kernel_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), to_hwio ? prim.kernel_md : prim.hwio_md, Engine(),
        to_hwio ? prim.hwio_md : prim.kernel_md));
  }
  return prim;
}

// The buffers of one call in flight: a kernel in each primitive's layout
// (forward, backward-data), and per chunk a scratchpad and, for the weight
// gradient, a partial gradient in the primitive's layout and in HWIO.
struct Workspace {
  std::vector<Buffer> kernel, scratch, partial, partial_hwio;
};

// A problem's plan: the batch cut into `chunks` (chunk i starts at image
// start[i]), a primitive per distinct chunk size, and the free workspaces.
struct Plan {
  std::vector<int64_t> start;          // chunks + 1 entries
  std::vector<int> primitive_of;       // chunk -> index into primitives
  std::vector<Primitive> primitives;
  std::mutex mutex;
  std::vector<std::unique_ptr<Workspace>> free;

  std::unique_ptr<Workspace> Acquire(const Problem& p) {
    {
      std::lock_guard<std::mutex> guard(mutex);
      if (!free.empty()) {
        auto ws = std::move(free.back());
        free.pop_back();
        return ws;
      }
    }
    auto ws = std::make_unique<Workspace>();
    for (const Primitive& prim : primitives)
      ws->kernel.push_back(p.pass != kBackwardWeights && prim.kernel_reorder
                               ? Allocate(prim.kernel_md.get_size()) : Buffer(nullptr));
    for (size_t i = 0; i + 1 < start.size(); ++i) {
      const Primitive& prim = primitives[primitive_of[i]];
      ws->scratch.push_back(Allocate(prim.scratch_md.get_size()));
      if (p.pass == kBackwardWeights) {
        ws->partial.push_back(Allocate(prim.kernel_md.get_size()));
        ws->partial_hwio.push_back(Allocate(prim.hwio_md.get_size()));
      }
    }
    return ws;
  }

  void Release(std::unique_ptr<Workspace> ws) {
    std::lock_guard<std::mutex> guard(mutex);
    free.push_back(std::move(ws));
  }
};

Plan& GetPlan(const Problem& p) {
  static std::mutex mutex;
  static auto* cache = new std::unordered_map<Problem, std::unique_ptr<Plan>, ProblemHash>();
  std::lock_guard<std::mutex> guard(mutex);
  auto& slot = (*cache)[p];
  if (!slot) {
    auto plan = std::make_unique<Plan>();
    std::vector<int64_t> sizes;   // of the distinct chunk sizes, in primitives' order
    plan->start.push_back(0);
    for (int64_t i = 0; i < p.chunks; ++i) {
      const int64_t size = p.n / p.chunks + (i < p.n % p.chunks);
      auto at = std::find(sizes.begin(), sizes.end(), size);
      if (at == sizes.end()) {
        plan->primitives.push_back(BuildPrimitive(p, size));
        at = sizes.insert(sizes.end(), size);
      }
      plan->primitive_of.push_back(static_cast<int>(at - sizes.begin()));
      plan->start.push_back(plan->start.back() + size);
    }
    slot = std::move(plan);
  }
  return *slot;
}

// One pass. `a`, `b`: the inputs (forward x, w; backward-data dy, w;
// backward-weights x, dy); `out`: the result.
void Run(const Problem& p, Plan& plan, ffi::ThreadPool& pool, void* a, void* b, void* out,
         std::string* error) {
  dnnl::engine& eng = Engine();
  std::unique_ptr<Workspace> ws = plan.Acquire(p);
  const int64_t chunks = static_cast<int64_t>(plan.primitive_of.size());
  // bytes per example: the image operand(s) and the image result
  const int64_t bytes = p.bf16 ? 2 : 4;
  const int64_t x_size = p.h * p.w * p.c * bytes, y_size = p.ho * p.wo * p.o * bytes;
  const int64_t in_size = p.pass == kBackwardData ? y_size : x_size;
  const int64_t out_size = p.pass == kBackwardData ? x_size : y_size;
  if (p.pass != kBackwardWeights) {   // the kernel, once per primitive, in its layout
    dnnl::stream stream(eng);
    for (size_t k = 0; k < plan.primitives.size(); ++k) {
      const Primitive& prim = plan.primitives[k];
      if (!prim.kernel_reorder) continue;
      memory hwio(prim.hwio_md, eng, b);
      memory blocked(prim.kernel_md, eng, ws->kernel[k].get());
      prim.kernel_reorder.execute(stream, hwio, blocked);
    }
  }
  ForEachChunk(pool, chunks, [&](int64_t i) {
    const int k = plan.primitive_of[i];
    const Primitive& prim = plan.primitives[k];
    dnnl::stream stream(eng);
    memory scratch(prim.scratch_md, eng, ws->scratch[i].get());
    const int64_t n0 = plan.start[i];
    memory in(prim.in_md, eng, static_cast<char*>(a) + n0 * in_size);
    if (p.pass == kBackwardWeights) {
      memory dy(prim.out_md, eng, static_cast<char*>(b) + n0 * y_size);
      memory dw(prim.kernel_md, eng, ws->partial[i].get());
      prim.conv.execute(stream, {{DNNL_ARG_SRC, in}, {DNNL_ARG_DIFF_DST, dy},
                                 {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_SCRATCHPAD, scratch}});
      if (prim.kernel_reorder) {
        memory hwio(prim.hwio_md, eng, ws->partial_hwio[i].get());
        prim.kernel_reorder.execute(stream, dw, hwio);
      } else {
        std::memcpy(ws->partial_hwio[i].get(), ws->partial[i].get(), prim.hwio_md.get_size());
      }
    } else {
      memory result(prim.out_md, eng, static_cast<char*>(out) + n0 * out_size);
      memory w = prim.kernel_reorder ? memory(prim.kernel_md, eng, ws->kernel[k].get())
                                     : memory(prim.hwio_md, eng, b);
      const int src = p.pass == kForward ? DNNL_ARG_SRC : DNNL_ARG_DIFF_DST;
      const int dst = p.pass == kForward ? DNNL_ARG_DST : DNNL_ARG_DIFF_SRC;
      prim.conv.execute(stream, {{src, in}, {DNNL_ARG_WEIGHTS, w}, {dst, result},
                                 {DNNL_ARG_SCRATCHPAD, scratch}});
    }
    stream.wait();
  }, error);
  if (p.pass == kBackwardWeights && error->empty()) {   // dw = Σ chunks' partials
    const int64_t size = p.kh * p.kw * (p.c / p.groups) * p.o;
    float* sum = static_cast<float*>(p.bf16 ? ws->partial_hwio[0].get() : out);
    if (!p.bf16) std::memcpy(sum, ws->partial_hwio[0].get(), size * sizeof(float));
    for (int64_t i = 1; i < chunks; ++i) {
      const float* part = static_cast<const float*>(ws->partial_hwio[i].get());
      for (int64_t j = 0; j < size; ++j) sum[j] += part[j];
    }
    if (p.bf16) {
      uint16_t* dw = static_cast<uint16_t*>(out);
      for (int64_t j = 0; j < size; ++j) dw[j] = ToBfloat16(sum[j]);
    }
  }
  plan.Release(std::move(ws));
}

struct Attrs {
  int64_t sh, sw, pt, pb, pl, pr, dh, dw, groups;
};

// Checks the shapes against each other and the attributes, then runs the pass.
// `x`, `w`, `y`: the dimensions of the image, kernel and output image, whichever
// of them are this pass's inputs or result.
ffi::Error Convolve(Pass pass, ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer b,
                    ffi::AnyBuffer out, ffi::Span<const int64_t> x, ffi::Span<const int64_t> w,
                    ffi::Span<const int64_t> y, const Attrs& at) {
  const ffi::DataType dtype = out.element_type();
  if ((dtype != ffi::DataType::F32 && dtype != ffi::DataType::BF16) ||
      a.element_type() != dtype || b.element_type() != dtype)
    return ffi::Error::InvalidArgument("fnn_onednn: expected float32 or bfloat16, all alike");
  if (x.size() != 4 || w.size() != 4 || y.size() != 4)
    return ffi::Error::InvalidArgument("fnn_onednn: expected rank-4 NHWC images, HWIO kernel");
  Problem p{pass, dtype == ffi::DataType::BF16, x[0], x[1], x[2], x[3], w[3], w[0], w[1], y[1],
            y[2], at.sh, at.sw, at.pt, at.pb, at.pl, at.pr, at.dh, at.dw, at.groups, 1};
  if (p.groups < 1 || p.c % p.groups || p.o % p.groups || w[2] * p.groups != p.c ||
      y[0] != p.n || y[3] != p.o || p.sh < 1 || p.sw < 1 || p.dh < 1 || p.dw < 1 ||
      std::min({p.pt, p.pb, p.pl, p.pr}) < 0 ||
      p.ho != (p.h + p.pt + p.pb - (p.dh * (p.kh - 1) + 1)) / p.sh + 1 ||
      p.wo != (p.w + p.pl + p.pr - (p.dw * (p.kw - 1) + 1)) / p.sw + 1 || p.ho < 1 || p.wo < 1)
    return ffi::Error::InvalidArgument("fnn_onednn: inconsistent convolution shapes");
  if (p.n == 0 || p.c == 0 || p.o == 0) {
    // nothing to convolve; a weight gradient over an empty batch is zero
    if (pass == kBackwardWeights) std::memset(out.untyped_data(), 0, out.size_bytes());
    return ffi::Error::Success();
  }
  p.chunks = std::max<int64_t>(1, std::min<int64_t>(p.n, pool.num_threads()));
  std::string error;
  Sequential sequential;   // building the plan and the caller's share of the work
  try {
    Run(p, GetPlan(p), pool, a.untyped_data(), b.untyped_data(), out.untyped_data(), &error);
  } catch (const dnnl::error& e) {
    error = std::string("oneDNN: ") + e.what();
  } catch (const std::bad_alloc&) {
    error = "out of memory";
  }
  if (!error.empty()) return ffi::Error::Internal("fnn_onednn: " + error);
  return ffi::Error::Success();
}

using Any = ffi::AnyBuffer;

ffi::Error ConvFwd(ffi::ThreadPool pool, Any x, Any w, ffi::Result<Any> y, int64_t sh,
                   int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh,
                   int64_t dw, int64_t groups) {
  return Convolve(kForward, pool, x, w, *y, x.dimensions(), w.dimensions(), y->dimensions(),
                  {sh, sw, pt, pb, pl, pr, dh, dw, groups});
}

ffi::Error ConvBwdData(ffi::ThreadPool pool, Any dy, Any w, ffi::Result<Any> dx, int64_t sh,
                       int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh,
                       int64_t dw, int64_t groups) {
  return Convolve(kBackwardData, pool, dy, w, *dx, dx->dimensions(), w.dimensions(),
                  dy.dimensions(), {sh, sw, pt, pb, pl, pr, dh, dw, groups});
}

ffi::Error ConvBwdWeights(ffi::ThreadPool pool, Any x, Any dy, ffi::Result<Any> dw, int64_t sh,
                          int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr,
                          int64_t dh, int64_t dwd, int64_t groups) {
  return Convolve(kBackwardWeights, pool, x, dy, *dw, x.dimensions(), dw->dimensions(),
                  dy.dimensions(), {sh, sw, pt, pb, pl, pr, dh, dwd, groups});
}

auto Binding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<Any>()
      .Arg<Any>()
      .Ret<Any>()
      .Attr<int64_t>("stride_h")
      .Attr<int64_t>("stride_w")
      .Attr<int64_t>("pad_top")
      .Attr<int64_t>("pad_bottom")
      .Attr<int64_t>("pad_left")
      .Attr<int64_t>("pad_right")
      .Attr<int64_t>("dil_h")
      .Attr<int64_t>("dil_w")
      .Attr<int64_t>("groups");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(FnnOnednnConvFwd, ConvFwd, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(FnnOnednnConvBwdData, ConvBwdData, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(FnnOnednnConvBwdWeights, ConvBwdWeights, Binding());

// oneDNN's version as major·10000 + minor·100 + patch (the library loaded at run time).
int FnnOnednnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}

// 1 when oneDNN runs bfloat16 convolutions on the CPU's own bfloat16 instructions
// (AVX512-BF16 or AMX), else 0 (then they would be emulated, or not built at all).
int FnnOnednnNativeBfloat16() {
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (static_cast<unsigned>(dnnl::get_effective_cpu_isa()) & bf16) == bf16;
}
