// Triangle rasterization: CUDA kernels. The math (snapping, clipping, edge functions, depth,
// barycentrics) is csdkit/raster.h, shared with the CPU path; here are launch shapes and atomics.
//
// Depth test: every covered fragment does a 64-bit atomicMin on its pixel's key
// (orderable depth bits << 32 | triangle index), so the nearest fragment wins and ties go to the
// lower triangle index, exactly like the CPU's in-order strict test. The key lives in the first
// 8 bytes of the pixel's rast entry until the resolve kernel overwrites it. float64 needs the
// whole 64 bits for the depth: a first pass finds the minimum depth, a second the lowest triangle
// index among the fragments at that depth.
//
// One thread per (triangle, image) rasterizes small triangles directly; triangles whose bounding
// box exceeds kSmallTrianglePixels are queued and rasterized by a block each.
#include <algorithm>
#include <cstdint>

#include "csdkit/raster.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace raster {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kSmallTrianglePixels = 64;
constexpr unsigned long long kEmptyKey = ~0ull;

__device__ __forceinline__ uint32_t ordered_bits(float z) {
  const uint32_t b = __float_as_uint(__fadd_rn(z, 0.0f));  // -0 -> +0
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ unsigned long long ordered_bits(double z) {
  const unsigned long long b = static_cast<unsigned long long>(__double_as_longlong(__dadd_rn(z, 0.0)));
  return (b & 0x8000000000000000ull) ? ~b : (b | 0x8000000000000000ull);
}

// Per-pixel scratch in the rast buffer: float -> one 64-bit key; double -> depth bits + id.
template <typename T>
struct Scratch;
template <>
struct Scratch<float> {
  static __device__ unsigned long long* key(float* rast, int64_t pixel) {
    return reinterpret_cast<unsigned long long*>(rast + pixel * 4);
  }
};
template <>
struct Scratch<double> {
  static __device__ unsigned long long* key(double* rast, int64_t pixel) {
    return reinterpret_cast<unsigned long long*>(rast + pixel * 4);
  }
  static __device__ unsigned int* id(double* rast, int64_t pixel) {
    return reinterpret_cast<unsigned int*>(rast + pixel * 4 + 1);
  }
};

// pass 0: float -> key min; double -> depth min. pass 1 (double only): id min at the min depth.
template <typename T, int Pass>
struct AtomicDepthSink {
  T* image;  // this image's rast [H, W, 4]
  int width;
  uint32_t tri;
  __device__ void operator()(int64_t px, int64_t py, T z) const {
    const int64_t pixel = py * width + px;
    if (sizeof(T) == 4) {
      const unsigned long long key = (static_cast<unsigned long long>(ordered_bits(z)) << 32) | tri;
      atomicMin(Scratch<T>::key(image, pixel), key);
    } else if (Pass == 0) {
      atomicMin(Scratch<T>::key(image, pixel), static_cast<unsigned long long>(ordered_bits(z)));
    } else if (*Scratch<T>::key(image, pixel) == static_cast<unsigned long long>(ordered_bits(z))) {
      atomicMin(reinterpret_cast<unsigned int*>(image + pixel * 4 + 1), tri);
    }
  }
};

__device__ __forceinline__ bool load_triangle(const int32_t* tri, int64_t t, int64_t n_vertices, int64_t* v) {
  for (int k = 0; k < 3; ++k) {
    v[k] = tri[3 * t + k];
    if (v[k] < 0 || v[k] >= n_vertices) return false;
  }
  return true;
}

template <typename T, int Pass>
struct SmallOrQueue {
  int width, height;
  AtomicDepthSink<T, Pass> sink;
  bool big = false;      // set by the first pass over the screen triangles
  bool rasterize = false;
  __device__ void operator()(const ScreenTri<T>& st) {
    TriSetup<T> s;
    if (!setup_triangle(st, width, 0, height, &s)) return;
    if (!rasterize) {
      big = big || (s.x1 - s.x0 + 1) * (s.y1 - s.y0 + 1) > kSmallTrianglePixels;
      return;
    }
    raster_triangle(s, sink);
  }
};

template <typename T, int Pass>
__global__ void raster_small_kernel(const Params p, const T* __restrict__ pos, const int32_t* __restrict__ tri,
                                    T* rast, int2* queue, unsigned int* queue_size) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t b = blockIdx.y;
  if (t >= p.n_triangles) return;
  int64_t v[3];
  if (!load_triangle(tri, t, p.n_vertices, v)) return;
  const T* pb = pos + b * p.n_vertices * 4;
  SmallOrQueue<T, Pass> op{p.width, p.height,
                           AtomicDepthSink<T, Pass>{rast + b * int64_t(p.height) * p.width * 4, p.width, uint32_t(t)}};
  for_each_screen_triangle(pb + v[0] * 4, pb + v[1] * 4, pb + v[2] * 4, p.width, p.height, op);
  if (op.big) {
    const unsigned int slot = atomicAdd(queue_size, 1u);
    queue[slot] = make_int2(int(b), int(t));
    return;
  }
  op.rasterize = true;
  for_each_screen_triangle(pb + v[0] * 4, pb + v[1] * 4, pb + v[2] * 4, p.width, p.height, op);
}

// A block per queued triangle: its threads share the pixels of each screen triangle.
template <typename T, int Pass>
struct BlockRaster {
  int width, height;
  AtomicDepthSink<T, Pass> sink;
  __device__ void operator()(const ScreenTri<T>& st) const {
    TriSetup<T> s;
    if (!setup_triangle(st, width, 0, height, &s)) return;
    const int64_t bw = s.x1 - s.x0 + 1, n = bw * (s.y1 - s.y0 + 1);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      AtomicDepthSink<T, Pass> local = sink;
      raster_pixel(s, s.x0 + i % bw, s.y0 + i / bw, local);
    }
  }
};

template <typename T, int Pass>
__global__ void raster_big_kernel(const Params p, const T* __restrict__ pos, const int32_t* __restrict__ tri,
                                  T* rast, const int2* __restrict__ queue, const unsigned int* queue_size) {
  const unsigned int n = *queue_size;
  for (unsigned int q = blockIdx.x; q < n; q += gridDim.x) {
    const int2 item = queue[q];
    const int64_t b = item.x, t = item.y;
    int64_t v[3];
    if (!load_triangle(tri, t, p.n_vertices, v)) continue;
    const T* pb = pos + b * p.n_vertices * 4;
    BlockRaster<T, Pass> op{p.width, p.height,
                            AtomicDepthSink<T, Pass>{rast + b * int64_t(p.height) * p.width * 4, p.width,
                                                     uint32_t(t)}};
    for_each_screen_triangle(pb + v[0] * 4, pb + v[1] * 4, pb + v[2] * 4, p.width, p.height, op);
  }
}

template <typename T>
__global__ void clear_kernel(T* rast, int64_t n_pixels) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n_pixels) return;
  *Scratch<T>::key(rast, i) = kEmptyKey;
  if (sizeof(T) == 8) *reinterpret_cast<unsigned int*>(rast + i * 4 + 1) = 0xffffffffu;
}

// Pixel (img, py, px) of linear index i.
struct PixelIndex {
  int64_t img, py, px;
};
__device__ __forceinline__ PixelIndex pixel_index(int64_t i, int height, int width) {
  const int64_t hw = int64_t(height) * width;
  return {i / hw, (i % hw) / width, i % width};
}

template <typename T>
__device__ void resolve_triangle(const Params& p, const T* pos, const int32_t* tri, int64_t t, PixelIndex q,
                                 T* out) {
  int64_t v[3];
  if (t < 0 || !load_triangle(tri, t, p.n_vertices, v)) {
    out[0] = out[1] = out[2] = out[3] = T(0);
    return;
  }
  const T* pb = pos + q.img * p.n_vertices * 4;
  T r[3];
  resolve_pixel(pb + v[0] * 4, pb + v[1] * 4, pb + v[2] * 4, pixel_center<T>(q.px, p.width),
                pixel_center<T>(q.py, p.height), r);
  out[0] = r[0];
  out[1] = r[1];
  out[2] = r[2];
  out[3] = T(t + 1);
}

// Turns the per-pixel depth keys into (u, v, z/w, id + 1).
template <typename T>
__global__ void resolve_keys_kernel(const Params p, const T* __restrict__ pos, const int32_t* __restrict__ tri,
                                    T* rast) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= p.batch * int64_t(p.height) * p.width) return;
  const unsigned long long key = *Scratch<T>::key(rast, i);
  int64_t t = -1;
  if (key != kEmptyKey)
    t = sizeof(T) == 4 ? int64_t(key & 0xffffffffull) : int64_t(*reinterpret_cast<const unsigned int*>(rast + i * 4 + 1));
  resolve_triangle(p, pos, tri, t, pixel_index(i, p.height, p.width), rast + i * 4);
}

template <typename T>
__global__ void resolve_kernel(const Params p, const T* __restrict__ pos, const int32_t* __restrict__ tri,
                               const T* rast_in, T* rast_out) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= p.batch * int64_t(p.height) * p.width) return;
  const int64_t t = triangle_of(rast_in[i * 4 + 3], p.n_triangles);
  resolve_triangle(p, pos, tri, t, pixel_index(i, p.height, p.width), rast_out + i * 4);
}

template <typename T>
__global__ void resolve_backward_kernel(const Params p, const T* __restrict__ pos, const int32_t* __restrict__ tri,
                                        const T* __restrict__ rast, const T* __restrict__ d_rast, T* d_pos) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= p.batch * int64_t(p.height) * p.width) return;
  const T* g = d_rast + i * 4;
  if (g[0] == T(0) && g[1] == T(0) && g[2] == T(0)) return;
  const int64_t t = triangle_of(rast[i * 4 + 3], p.n_triangles);
  int64_t v[3];
  if (t < 0 || !load_triangle(tri, t, p.n_vertices, v)) return;
  const PixelIndex q = pixel_index(i, p.height, p.width);
  const T* pb = pos + q.img * p.n_vertices * 4;
  T gp[3][4];
  if (!resolve_pixel_backward(pb + v[0] * 4, pb + v[1] * 4, pb + v[2] * 4, pixel_center<T>(q.px, p.width),
                              pixel_center<T>(q.py, p.height), g, gp))
    return;
  T* db = d_pos + q.img * p.n_vertices * 4;
  for (int k = 0; k < 3; ++k)
    for (int c = 0; c < 4; ++c) atomicAdd(db + v[k] * 4 + c, gp[k][c]);
}

template <typename T>
__global__ void bary_derivatives_kernel(const Params p, const T* __restrict__ pos, const int32_t* __restrict__ tri,
                                        const T* __restrict__ rast, T* __restrict__ rast_db) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= p.batch * int64_t(p.height) * p.width) return;
  T* out = rast_db + i * 4;
  const int64_t t = triangle_of(rast[i * 4 + 3], p.n_triangles);
  int64_t v[3];
  if (t < 0 || !load_triangle(tri, t, p.n_vertices, v)) {
    out[0] = out[1] = out[2] = out[3] = T(0);
    return;
  }
  const PixelIndex q = pixel_index(i, p.height, p.width);
  const T* pb = pos + q.img * p.n_vertices * 4;
  bary_derivatives_pixel(pb + v[0] * 4, pb + v[1] * 4, pb + v[2] * 4, pixel_center<T>(q.px, p.width),
                         pixel_center<T>(q.py, p.height), p.width, p.height, out);
}

template <typename T, int Pass>
void launch_raster_passes(const Params& p, const T* pos, const int32_t* tri, T* rast, int2* queue,
                          unsigned int* queue_size, cudaStream_t stream) {
  cuda::check(cudaMemsetAsync(queue_size, 0, sizeof(unsigned int), stream), "cudaMemsetAsync");
  const dim3 grid(cuda::blocks_for(p.n_triangles, kThreads), unsigned(p.batch));
  raster_small_kernel<T, Pass><<<grid, kThreads, 0, stream>>>(p, pos, tri, rast, queue, queue_size);
  cuda::check_launch("raster_small_kernel");
  const unsigned big_blocks = unsigned(std::min<int64_t>(p.batch * p.n_triangles, 4096));
  raster_big_kernel<T, Pass><<<big_blocks, kThreads, 0, stream>>>(p, pos, tri, rast, queue, queue_size);
  cuda::check_launch("raster_big_kernel");
}

}  // namespace

template <typename T>
void rasterize_cuda(const Params& p, const T* pos, const int32_t* tri, T* rast, Device dev) {
  check_arg(reinterpret_cast<uintptr_t>(rast) % 8 == 0, "raster::rasterize", "rast must be 8-byte aligned on CUDA");
  cuda::DeviceGuard guard(dev.index);
  cudaStream_t stream = cuda::stream_of(dev);
  const int64_t n_pixels = p.batch * int64_t(p.height) * p.width;
  clear_kernel<T><<<cuda::blocks_for(n_pixels, kThreads), kThreads, 0, stream>>>(rast, n_pixels);
  cuda::check_launch("raster clear_kernel");
  if (p.n_triangles > 0) {
    // Queue of big (image, triangle) pairs: at most one entry per pair, plus the counter.
    void* scratch = nullptr;
    const size_t queue_bytes = size_t(p.batch * p.n_triangles) * sizeof(int2);
    cuda::check(cudaMallocAsync(&scratch, queue_bytes + sizeof(unsigned int), stream), "cudaMallocAsync");
    int2* queue = static_cast<int2*>(scratch);
    unsigned int* queue_size = reinterpret_cast<unsigned int*>(static_cast<char*>(scratch) + queue_bytes);
    launch_raster_passes<T, 0>(p, pos, tri, rast, queue, queue_size, stream);
    if (sizeof(T) == 8) launch_raster_passes<T, 1>(p, pos, tri, rast, queue, queue_size, stream);
    cuda::check(cudaFreeAsync(scratch, stream), "cudaFreeAsync");
  }
  resolve_keys_kernel<T><<<cuda::blocks_for(n_pixels, kThreads), kThreads, 0, stream>>>(p, pos, tri, rast);
  cuda::check_launch("raster resolve_keys_kernel");
}

template <typename T>
void resolve_cuda(const Params& p, const T* pos, const int32_t* tri, const T* rast_in, T* rast_out, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  const int64_t n_pixels = p.batch * int64_t(p.height) * p.width;
  resolve_kernel<T><<<cuda::blocks_for(n_pixels, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(p, pos, tri, rast_in,
                                                                                               rast_out);
  cuda::check_launch("raster resolve_kernel");
}

template <typename T>
void resolve_backward_cuda(const Params& p, const T* pos, const int32_t* tri, const T* rast, const T* d_rast,
                           T* d_pos, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  const int64_t n_pixels = p.batch * int64_t(p.height) * p.width;
  resolve_backward_kernel<T><<<cuda::blocks_for(n_pixels, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(
      p, pos, tri, rast, d_rast, d_pos);
  cuda::check_launch("raster resolve_backward_kernel");
}

template <typename T>
void bary_derivatives_cuda(const Params& p, const T* pos, const int32_t* tri, const T* rast, T* rast_db,
                           Device dev) {
  cuda::DeviceGuard guard(dev.index);
  const int64_t n_pixels = p.batch * int64_t(p.height) * p.width;
  bary_derivatives_kernel<T><<<cuda::blocks_for(n_pixels, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(
      p, pos, tri, rast, rast_db);
  cuda::check_launch("raster bary_derivatives_kernel");
}

#define CSDKIT_INSTANTIATE(T)                                                                                     \
  template void rasterize_cuda<T>(const Params&, const T*, const int32_t*, T*, Device);                           \
  template void resolve_cuda<T>(const Params&, const T*, const int32_t*, const T*, T*, Device);                   \
  template void resolve_backward_cuda<T>(const Params&, const T*, const int32_t*, const T*, const T*, T*, Device); \
  template void bary_derivatives_cuda<T>(const Params&, const T*, const int32_t*, const T*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

}  // namespace raster
}  // namespace csdkit
