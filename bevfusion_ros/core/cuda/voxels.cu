// CUDA twins of core/pipeline/voxels.py (hard voxelisation, PointPillars' point features, the scatter
// to the BEV canvas), compiled at run time by pycuda (core/cuda/voxels.py). Results are deterministic
// and equal numpy's: voxels numbered by the position of their first point in the input, each keeping
// its first max_points points in input order, whatever order the threads run in.
//
// Voxelisation, per frame (n points, C float32 columns, x y z first):
//   vox_insert      each point's voxel key into an open-addressing hash table, the smallest point
//                   index per key by atomicMin (order-independent)
//   vox_first       flag = 1 for the point that is its voxel's first
//   scan_*          exclusive prefix sum of the flags: a voxel's number in first-appearance order
//   vox_assign      each point's voxel (-1 beyond max_voxels), points counted per voxel
//   scan_*          exclusive prefix sum of the counts: where each voxel's points go
//   vox_bucket      point indices into their voxel's bucket (in any order)
//   vox_finalize    per voxel (a warp): the first max_points points by index kept, mean or
//                   padded features, num_points, coords (batch 0, z, y, x), the points over the cap

#define SCAN_BLOCK 1024

__device__ __forceinline__ int voxel_key(const float* p, float lox, float loy, float loz, float sx, float sy,
                                         float sz, int nx, int ny, int nz) {
  float x = p[0], y = p[1], z = p[2];
  if (!(isfinite(x) && isfinite(y) && isfinite(z))) return -1;
  // numpy: floor(clip((p - lo) / size, -1, n)); inside when 0 <= cell < n
  int ix = (int)floorf(fminf(fmaxf(__fdiv_rn(__fsub_rn(x, lox), sx), -1.0f), (float)nx));
  int iy = (int)floorf(fminf(fmaxf(__fdiv_rn(__fsub_rn(y, loy), sy), -1.0f), (float)ny));
  int iz = (int)floorf(fminf(fmaxf(__fdiv_rn(__fsub_rn(z, loz), sz), -1.0f), (float)nz));
  if (ix < 0 || ix >= nx || iy < 0 || iy >= ny || iz < 0 || iz >= nz) return -1;
  return (iz * ny + iy) * nx + ix;
}

extern "C" __global__ void vox_insert(const float* pts, int n, int c, float lox, float loy, float loz, float sx,
                                      float sy, float sz, int nx, int ny, int nz, int* table_key, int* table_first,
                                      int table_size, int* point_key, int* point_slot) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int key = voxel_key(pts + (size_t)i * c, lox, loy, loz, sx, sy, sz, nx, ny, nz);
  point_key[i] = key;
  if (key < 0) {
    point_slot[i] = -1;
    return;
  }
  unsigned int h = ((unsigned int)key * 2654435761u) % (unsigned int)table_size;
  while (true) {  // the table holds at least twice as many slots as points: a free slot exists
    int prev = atomicCAS(table_key + h, -1, key);
    if (prev == -1 || prev == key) break;
    h = (h + 1u) % (unsigned int)table_size;
  }
  atomicMin(table_first + h, i);
  point_slot[i] = (int)h;
}

extern "C" __global__ void vox_first(const int* point_slot, const int* table_first, int n, int* flag) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int s = point_slot[i];
  flag[i] = (s >= 0 && table_first[s] == i) ? 1 : 0;
}

// Exclusive prefix sum of SCAN_BLOCK values per block (Hillis-Steele in shared memory); the block's
// total goes to block_sums, which the host scans the same way and adds back with scan_add.
extern "C" __global__ void scan_block(const int* in, int n, int* out, int* block_sums) {
  __shared__ int buf[2][SCAN_BLOCK];
  int t = threadIdx.x;
  int i = blockIdx.x * SCAN_BLOCK + t;
  int v = i < n ? in[i] : 0;
  int cur = 0;
  buf[cur][t] = v;
  __syncthreads();
  for (int off = 1; off < SCAN_BLOCK; off <<= 1) {
    int x = buf[cur][t];
    if (t >= off) x += buf[cur][t - off];
    buf[1 - cur][t] = x;
    cur = 1 - cur;
    __syncthreads();
  }
  if (i < n) out[i] = buf[cur][t] - v;
  if (t == SCAN_BLOCK - 1) block_sums[blockIdx.x] = buf[cur][t];
}

extern "C" __global__ void scan_add(int* out, int n, const int* block_offsets) {
  int i = blockIdx.x * SCAN_BLOCK + threadIdx.x;
  if (i < n) out[i] += block_offsets[blockIdx.x];
}

extern "C" __global__ void vox_assign(const int* point_slot, const int* table_first, const int* first_rank, int n,
                                      int max_voxels, int* point_voxel, int* voxel_count) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int s = point_slot[i];
  int v = s < 0 ? -1 : first_rank[table_first[s]];
  if (v >= max_voxels) v = -1;  // a voxel beyond the cap: its points are lost, as in mmcv
  point_voxel[i] = v;
  if (v >= 0) atomicAdd(voxel_count + v, 1);
}

extern "C" __global__ void vox_bucket(const int* point_voxel, int n, const int* bucket_start, int* bucket_fill,
                                      int* bucket) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int v = point_voxel[i];
  if (v < 0) return;
  bucket[bucket_start[v] + atomicAdd(bucket_fill + v, 1)] = i;
}

// One warp per kept voxel. The a-th kept point is the smallest point index above the (a-1)-th: the
// lanes scan the bucket in strides and a warp minimum picks it, so the kept points come out in input
// order without sorting the bucket (O(kept * count / 32) per warp; the real sweep has voxels of over
// a thousand points, which a thread sorting its bucket alone took 12 ms over). reduce_mean: features
// [M, C] (the mean, summed in double in input order as numpy's bincount does); else [M, max_points, C]
// zero-padded. kept_index: [M, max_points] scratch.
extern "C" __global__ void vox_finalize(const float* pts, int c, const int* point_key, const int* bucket,
                                        const int* bucket_start, const int* voxel_count, int voxels, int max_points,
                                        int nx, int ny, int reduce_mean, int* kept_index, float* features,
                                        int* num_points, int* coords, int* dropped_points) {
  int v = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (v >= voxels) return;  // whole warps: v is the same on every lane
  const int* b = bucket + bucket_start[v];
  int count = voxel_count[v];
  int kept = min(count, max_points);
  int* sel = kept_index + (size_t)v * max_points;
  int prev = -1;
  for (int a = 0; a < kept; ++a) {
    int m = 0x7FFFFFFF;
    for (int j = lane; j < count; j += 32) {
      int x = b[j];
      if (x > prev && x < m) m = x;
    }
    for (int off = 16; off > 0; off >>= 1) m = min(m, __shfl_xor_sync(0xFFFFFFFFu, m, off));
    if (lane == 0) sel[a] = m;
    prev = m;
  }
  __syncwarp();
  if (lane == 0) {
    if (count > kept) atomicAdd(dropped_points, count - kept);
    num_points[v] = kept;
    int key = point_key[sel[0]];
    coords[4 * v] = 0;
    coords[4 * v + 1] = key / (ny * nx);
    coords[4 * v + 2] = (key / nx) % ny;
    coords[4 * v + 3] = key % nx;
  }
  if (reduce_mean) {
    for (int j = lane; j < c; j += 32) {
      double s = 0.0;
      for (int k = 0; k < kept; ++k) s += (double)pts[(size_t)sel[k] * c + j];
      features[(size_t)v * c + j] = (float)(s / (double)max(kept, 1));
    }
  } else {
    float* out = features + (size_t)v * max_points * c;
    for (int e = lane; e < max_points * c; e += 32) {
      int k = e / c, j = e % c;
      out[e] = k < kept ? pts[(size_t)sel[k] * c + j] : 0.0f;
    }
  }
}

// PointPillars' point features, one thread per (pillar, slot): the point's C columns, [its distance],
// its x y z offset to the mean of the pillar's slots (padding counts as 0, divided by max(n, 1)),
// its x y offset to the pillar's centre; padded slots all 0. centre = coord * size + offset.
extern "C" __global__ void pillar_point_features(const float* pts, const int* num_points, const int* coords, int m,
                                                 int p, int c, float size_x, float size_y, float offset_x,
                                                 float offset_y, int with_distance, float* out) {
  int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= m * p) return;
  int v = idx / p, s = idx % p;
  int f = c + (with_distance ? 1 : 0) + 5;
  float* o = out + (size_t)idx * f;
  int n = num_points[v];
  if (s >= n) {
    for (int j = 0; j < f; ++j) o[j] = 0.0f;
    return;
  }
  const float* pillar = pts + (size_t)v * p * c;
  float sum[3] = {0.0f, 0.0f, 0.0f};
  for (int k = 0; k < p; ++k)
    for (int j = 0; j < 3; ++j) sum[j] = __fadd_rn(sum[j], pillar[(size_t)k * c + j]);
  float inv = (float)max(n, 1);
  const float* pt = pillar + (size_t)s * c;
  int j = 0;
  for (; j < c; ++j) o[j] = pt[j];
  if (with_distance) o[j++] = sqrtf(__fadd_rn(__fadd_rn(__fmul_rn(pt[0], pt[0]), __fmul_rn(pt[1], pt[1])),
                                              __fmul_rn(pt[2], pt[2])));
  for (int a = 0; a < 3; ++a) o[j++] = __fsub_rn(pt[a], __fdiv_rn(sum[a], inv));
  float cx = __fadd_rn(__fmul_rn((float)coords[4 * v + 3], size_x), offset_x);
  float cy = __fadd_rn(__fmul_rn((float)coords[4 * v + 2], size_y), offset_y);
  o[j++] = __fsub_rn(pt[0], cx);
  o[j] = __fsub_rn(pt[1], cy);
}

// Pillar features [M, C] onto the zeroed canvas [C, ny, nx], one thread per (pillar, channel).
extern "C" __global__ void scatter_canvas(const float* feat, const int* coords, int m, int c, int ny, int nx,
                                          float* canvas) {
  int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= m * c) return;
  int v = idx / c, ch = idx % c;
  canvas[(size_t)ch * ny * nx + (size_t)coords[4 * v + 2] * nx + coords[4 * v + 3]] = feat[idx];
}
