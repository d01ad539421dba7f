// XXH3-128, streaming, for memjob's Memory keys and hash() (src/memory/xxh128.ts).
#pragma once
#include <napi.h>

namespace memjob {
void InitHash(Napi::Env env, Napi::Object exports);
}
