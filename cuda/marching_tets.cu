// Marching tetrahedra: CUDA kernels, one thread per tet / active tet / slot, the same per-element
// functions as the CPU path (csdkit/marching_tets.h). Edges are inserted with atomicCAS on the keys
// and atomicMin on the owners, so each edge's owner is its smallest slot, as on the CPU.
#include "csdkit/marching_tets.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace marching_tets {

namespace {

constexpr int kThreads = 256;

template <typename T, typename I>
__global__ void classify_kernel(const Args<T, I> a) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t >= a.n_tets) return;
  a.tet_triangles[t] = num_triangles(case_of(a, t));
}

template <typename T, typename I>
__global__ void insert_kernel(const Args<T, I> a) {
  const int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (s >= 6 * a.n_active) return;
  const int64_t i = s / 6;
  const int e = int(s - 6 * i);
  const int64_t t = a.active[i];
  const int c = case_of(a, t);
  if (!edge_crosses(c, e)) {
    a.slot_entry[s] = -1;
    return;
  }
  int64_t lo, hi;
  const int64_t key = edge_key(a, t, e, &lo, &hi);
  const uint64_t mask = (uint64_t(1) << a.table_bits) - 1;
  uint64_t h = edge_hash(key, a.table_bits);
  auto* keys = reinterpret_cast<unsigned long long*>(a.table_keys);
  for (;;) {
    const unsigned long long prev = atomicCAS(keys + h, ~0ull, static_cast<unsigned long long>(key));
    if (prev == ~0ull || prev == static_cast<unsigned long long>(key)) break;
    h = (h + 1) & mask;
  }
  atomicMin(reinterpret_cast<long long*>(a.table_owner) + h, static_cast<long long>(s));
  a.slot_entry[s] = int64_t(h);
}

template <typename T, typename I>
__global__ void owners_kernel(const Args<T, I> a) {
  const int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (s >= 6 * a.n_active) return;
  mark_owner_slot(a, s);
}

template <typename T, typename I>
__global__ void emit_kernel(const Args<T, I> a) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= a.n_active) return;
  emit_tet(a, i);
}

}  // namespace

template <typename T, typename I>
void classify_cuda(const Args<T, I>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  classify_kernel<T, I><<<cuda::blocks_for(a.n_tets, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(a);
  cuda::check_launch("marching_tets classify_kernel");
}

template <typename T, typename I>
void insert_edges_cuda(const Args<T, I>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  insert_kernel<T, I><<<cuda::blocks_for(6 * a.n_active, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(a);
  cuda::check_launch("marching_tets insert_kernel");
}

template <typename T, typename I>
void mark_owners_cuda(const Args<T, I>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  owners_kernel<T, I><<<cuda::blocks_for(6 * a.n_active, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(a);
  cuda::check_launch("marching_tets owners_kernel");
}

template <typename T, typename I>
void emit_cuda(const Args<T, I>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  emit_kernel<T, I><<<cuda::blocks_for(a.n_active, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(a);
  cuda::check_launch("marching_tets emit_kernel");
}

#define CSDKIT_INSTANTIATE(T, I)                                          \
  template void classify_cuda<T, I>(const Args<T, I>&, Device);           \
  template void insert_edges_cuda<T, I>(const Args<T, I>&, Device);       \
  template void mark_owners_cuda<T, I>(const Args<T, I>&, Device);        \
  template void emit_cuda<T, I>(const Args<T, I>&, Device);
CSDKIT_INSTANTIATE(float, int32_t)
CSDKIT_INSTANTIATE(float, int64_t)
CSDKIT_INSTANTIATE(double, int32_t)
CSDKIT_INSTANTIATE(double, int64_t)
#undef CSDKIT_INSTANTIATE

}  // namespace marching_tets
}  // namespace csdkit
