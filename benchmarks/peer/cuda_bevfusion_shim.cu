// A C ABI over NVIDIA CUDA-BEVFusion's pre-processing classes, so that benchmarks/peer_kernels.py can
// drive them through ctypes on the same stream, inputs and GPU as this package's kernels. Benchmark
// harness only: built on the GPU machine against the peer's sources (../shared/peers, carried there),
// never part of the product.
#include <cuda_runtime.h>

#include <memory>

#include "bevfusion/camera-bevpool.hpp"
#include "bevfusion/camera-geometry.hpp"
#include "bevfusion/camera-normalization.hpp"
#include "bevfusion/lidar-voxelization.hpp"

using namespace bevfusion;

namespace {
// The peer hands out shared_ptrs; ctypes holds a raw pointer to a box that owns one.
template <typename T>
struct Box {
  std::shared_ptr<T> p;
};
}  // namespace

extern "C" {

void* peer_normalization_create(int image_width, int image_height, int num_camera, int output_width,
                                int output_height, float resize, const float* mean, const float* std, int swap_rb) {
  camera::NormalizationParameter param;
  param.image_width = image_width;
  param.image_height = image_height;
  param.num_camera = num_camera;
  param.output_width = output_width;
  param.output_height = output_height;
  param.resize_lim = resize;
  param.interpolation = camera::Interpolation::Bilinear;
  param.method = camera::NormMethod::mean_std(mean, std, 1 / 255.0f, 0.0f,
                                              swap_rb ? camera::ChannelType::Invert : camera::ChannelType::Nothing);
  return new Box<camera::Normalization>{camera::create_normalization(param)};
}

// images: num_camera host pointers (page-locked for an asynchronous copy); returns the device fp16 output
void* peer_normalization_forward(void* h, const unsigned char** images, void* stream) {
  return static_cast<Box<camera::Normalization>*>(h)->p->forward(images, stream);
}

void peer_normalization_free(void* h) { delete static_cast<Box<camera::Normalization>*>(h); }

void* peer_voxelization_create(const float* min_range, const float* max_range, const float* voxel_size,
                               int num_feature, int max_voxels, int max_points_per_voxel, int max_points) {
  lidar::VoxelizationParameter param;
  param.min_range = nvtype::Float3(min_range[0], min_range[1], min_range[2]);
  param.max_range = nvtype::Float3(max_range[0], max_range[1], max_range[2]);
  param.voxel_size = nvtype::Float3(voxel_size[0], voxel_size[1], voxel_size[2]);
  param.grid_size = lidar::VoxelizationParameter::compute_grid_size(param.max_range, param.min_range, param.voxel_size);
  param.num_feature = num_feature;
  param.max_voxels = max_voxels;
  param.max_points_per_voxel = max_points_per_voxel;
  param.max_points = max_points;
  return new Box<lidar::Voxelization>{lidar::create_voxelization(param)};
}

// points: device fp16 (n, num_feature); the peer synchronises the stream inside to read the voxel count
unsigned int peer_voxelization_forward(void* h, const void* points, int n, void* stream) {
  auto& v = static_cast<Box<lidar::Voxelization>*>(h)->p;
  v->forward(static_cast<const nvtype::half*>(points), n, stream, lidar::CoordinateOrder::XYZ);
  return v->num_voxels();
}

const void* peer_voxelization_features(void* h) { return static_cast<Box<lidar::Voxelization>*>(h)->p->features(); }
const void* peer_voxelization_indices(void* h) { return static_cast<Box<lidar::Voxelization>*>(h)->p->indices(); }
void peer_voxelization_free(void* h) { delete static_cast<Box<lidar::Voxelization>*>(h); }

void* peer_bevpool_create(int n, int c, int d, int fh, int fw, int bev_width, int bev_height) {
  return new Box<camera::BEVPool>{camera::create_bevpool({n, c, d, fh, fw}, bev_width, bev_height)};
}

// feature (N, fH, fW, C) fp16, depth (N, D, fH, fW) fp16, indices into depth, intervals (start, end, cell)
void* peer_bevpool_forward(void* h, const void* feature, const void* depth, const void* indices,
                           const void* intervals, unsigned int num_intervals, void* stream) {
  return static_cast<Box<camera::BEVPool>*>(h)->p->forward(
      static_cast<const nvtype::half*>(feature), static_cast<const nvtype::half*>(depth),
      static_cast<const unsigned int*>(indices), static_cast<const nvtype::Int3*>(intervals), num_intervals, stream);
}

void peer_bevpool_free(void* h) { delete static_cast<Box<camera::BEVPool>*>(h); }

// bounds: xbound, ybound, zbound, dbound as (min, max, step) each
void* peer_geometry_create(const float* bounds, int nx, int ny, int nz, int feat_width, int feat_height,
                           int image_width, int image_height, int num_camera) {
  camera::GeometryParameter param;
  param.xbound = nvtype::Float3(bounds[0], bounds[1], bounds[2]);
  param.ybound = nvtype::Float3(bounds[3], bounds[4], bounds[5]);
  param.zbound = nvtype::Float3(bounds[6], bounds[7], bounds[8]);
  param.dbound = nvtype::Float3(bounds[9], bounds[10], bounds[11]);
  param.geometry_dim = nvtype::Int3(nx, ny, nz);
  param.feat_width = feat_width;
  param.feat_height = feat_height;
  param.image_width = image_width;
  param.image_height = image_height;
  param.num_camera = num_camera;
  return new Box<camera::Geometry>{camera::create_geometry(param)};
}

// each argument: num_camera row-major 4x4 float matrices on the host
void peer_geometry_update(void* h, const float* camera2lidar, const float* intrinsics, const float* img_aug,
                          void* stream) {
  static_cast<Box<camera::Geometry>*>(h)->p->update(camera2lidar, intrinsics, img_aug, stream);
}

unsigned int peer_geometry_num_indices(void* h) { return static_cast<Box<camera::Geometry>*>(h)->p->num_indices(); }
unsigned int peer_geometry_num_intervals(void* h) {
  return static_cast<Box<camera::Geometry>*>(h)->p->num_intervals();
}
void peer_geometry_free(void* h) { delete static_cast<Box<camera::Geometry>*>(h); }
}
