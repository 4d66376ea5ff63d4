# The CPU training addon (native/cpu). Built by scripts/build-native.mjs, which finds OpenBLAS
# and passes its directories as the variables below. Kept out of the repository root on
# purpose: there npm would run node-gyp itself and an install without a compiler would fail.
{
  "variables": {
    "openblas_include%": "/usr/include/x86_64-linux-gnu",
    "openblas_lib%": "/usr/lib/x86_64-linux-gnu",
    "march%": "",
  },
  "targets": [
    {
      "target_name": "sae_native",
      "sources": ["cpu/addon.cc", "cpu/sae_core.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<(openblas_include)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fno-math-errno", "-fexceptions"],
      "conditions": [["march!=''", {"cflags_cc": ["-march=<(march)"]}]],
      "libraries": ["-L<(openblas_lib)", "-Wl,-rpath,<(openblas_lib)", "-lopenblas", "-fopenmp", "-Wl,-z,now"],
    }
  ]
}
