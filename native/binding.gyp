# This file sits in native/, not at the package root, on purpose: npm treats a
# root binding.gyp as an implicit "node-gyp rebuild" install script. "gypfile":
# false in package.json does not stop that once a lockfile lists memjob (npm
# 11.19.1 ran node-gyp rebuild on `npm ci` in a consumer project), and
# consumers would then compile despite the shipped prebuilds.
{
  "targets": [
    {
      "target_name": "memjob_native",
      "sources": ["addon.cc", "alloc.cc", "hash.cc", "mapping.cc", "regions.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "11.0"
      }
    }
  ]
}
