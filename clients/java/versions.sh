# The pinned code generators (setup.sh fetches them from Maven Central, generate.sh runs
# them). protoc matches protobuf-java in pom.xml. protoc-gen-grpc-java is 1.83.1, the newest
# whose linux-x86_64 executable the registry serves (1.84.x and 1.85.x are refused); its
# output runs on the 1.85.0 runtime that pom.xml pins.
PROTOC_VERSION=4.33.5
GRPC_JAVA_PLUGIN_VERSION=1.83.1
