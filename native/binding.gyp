# Build description of nvmig's native addon (node-gyp). Built by the root package's
# "install" script: `node-gyp rebuild -C native`. Output: build/Release/nvmig_native.node.
{
  "targets": [
    {
      "target_name": "nvmig_native",
      "sources": [
        "src/addon.cc",
        "src/args.cc",
        "src/eventfd.cc",
        "src/fd.cc",
        "src/fdpass.cc",
        "src/mmap.cc",
        "src/poll.cc",
        "src/socket.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-std=gnu++17"]
    }
  ]
}
