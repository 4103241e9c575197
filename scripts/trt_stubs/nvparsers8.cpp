// TensorRT 8.6's bindings also link the Caffe and UFF parsers of libnvparsers.so.8 (removed in 10).
namespace nvuffparser {
enum class FieldType : int {};
struct FieldMap {
    FieldMap(const char*, const void*, FieldType, int);
};
FieldMap::FieldMap(const char*, const void*, FieldType, int) {}
void* createUffParser() { return nullptr; }
}  // namespace nvuffparser
namespace nvcaffeparser1 {
void* createCaffeParser() { return nullptr; }
void shutdownProtobufLibrary() {}
}  // namespace nvcaffeparser1
