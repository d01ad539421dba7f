// XXH3-128 streaming hashes over caller memory, for Memory's keys and hash()
// (src/memory/xxh128.ts). xxhash.h is xxHash 0.8.3 by Yann Collet (BSD
// 2-Clause, its licence is at the top of the file), vendored whole and
// compiled inline here: the reference implementation, vectorised (SSE2 on
// x86-64, NEON on arm64). Hashing reads the TypedArray's own memory, without
// the copy a WebAssembly build makes (native-notes/memory-hash.md).
#define XXH_INLINE_ALL
#include "xxhash.h"

#include "hash.h"

#include <cstdio>

namespace memjob {

namespace {

constexpr napi_type_tag kHashTag = {0x6d656d6a6f626861ULL, 0x7368737461746521ULL};

XXH3_state_t* StateArg(const Napi::CallbackInfo& info) {
  const Napi::Value value = info[0];
  bool tagged = false;
  if (value.IsExternal()) napi_check_object_type_tag(info.Env(), value, &kHashTag, &tagged);
  if (!tagged) throw Napi::TypeError::New(info.Env(), "expected a hash state");
  return value.As<Napi::External<XXH3_state_t>>().Data();
}

// xxh128Create() -> a state, reset, freed with its handle.
Napi::Value CreateFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw Napi::Error::New(env, "out of memory for a hash state");
  XXH3_128bits_reset(state);
  auto handle = Napi::External<XXH3_state_t>::New(env, state, [](Napi::Env, XXH3_state_t* s) { XXH3_freeState(s); });
  napi_type_tag_object(env, handle, &kHashTag);
  return handle;
}

Napi::Value ResetFn(const Napi::CallbackInfo& info) {
  XXH3_128bits_reset(StateArg(info));
  return info.Env().Undefined();
}

// xxh128Update(state, typedArray): hashes the view's bytes where they are.
Napi::Value UpdateFn(const Napi::CallbackInfo& info) {
  XXH3_state_t* state = StateArg(info);
  if (!info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "expected a TypedArray to hash");
  Napi::TypedArray array = info[1].As<Napi::TypedArray>();
  const uint8_t* data = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  if (array.ByteLength() > 0) XXH3_128bits_update(state, data, array.ByteLength());
  return info.Env().Undefined();
}

// xxh128Digest(state) -> 32 hex digits, in xxHash's canonical (big-endian) order.
Napi::Value DigestFn(const Napi::CallbackInfo& info) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(StateArg(info)));
  char hex[33];
  for (int i = 0; i < 16; i++) std::snprintf(hex + 2 * i, 3, "%02x", canonical.digest[i]);
  return Napi::String::New(info.Env(), hex, 32);
}

}  // namespace

void InitHash(Napi::Env env, Napi::Object exports) {
  exports.Set("xxh128Create", Napi::Function::New(env, CreateFn, "xxh128Create"));
  exports.Set("xxh128Reset", Napi::Function::New(env, ResetFn, "xxh128Reset"));
  exports.Set("xxh128Update", Napi::Function::New(env, UpdateFn, "xxh128Update"));
  exports.Set("xxh128Digest", Napi::Function::New(env, DigestFn, "xxh128Digest"));
}

}  // namespace memjob
