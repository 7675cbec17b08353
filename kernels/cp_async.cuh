#pragma once
// 16-byte asynchronous global->shared copies (sm_80+), with zero fill for skipped sources.

namespace sspan::kernels {

// Copy 16 bytes from global `src` to shared `dst` when `valid`; otherwise write 16 zero bytes
// to `dst` and read nothing (src-size 0). `src` must still be a mapped address.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
  unsigned smem = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(src), "r"(src_bytes)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Wait until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace sspan::kernels
