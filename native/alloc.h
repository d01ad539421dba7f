// Large anonymous allocations for arrays read into memory (src/native.ts allocateLarge).
#pragma once
#include <napi.h>

namespace memjob {
void InitAlloc(Napi::Env env, Napi::Object exports);
}
