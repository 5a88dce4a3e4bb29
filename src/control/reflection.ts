/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, via @grpc/reflection) over the compiled
 * descriptors of every file under proto/ (src/gen/descriptor-set.ts, written by
 * scripts/proto-gen.mjs). Lets generic tools (`buf curl`, grpcurl) list and call the services
 * without a local copy of the .proto files.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ReflectionService } from "@grpc/reflection";
import { fileDescriptorSetBase64 } from "../gen/descriptor-set.ts";

/** The encoded FileDescriptorProtos inside the generated FileDescriptorSet (field 1, repeated). */
export function fileDescriptorProtos(): Buffer[] {
  const reader = new BinaryReader(Buffer.from(fileDescriptorSetBase64, "base64"));
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) files.push(Buffer.from(reader.bytes()));
    else reader.skip(wireType);
  }
  return files;
}

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/** A reflection service describing every service of proto/ (MigrationService, Health). */
export function createReflectionService(): ReflectionService {
  // @grpc/reflection only reads `fileDescriptorProtos` from the package definition's entries.
  const definition = {
    "nvmig.descriptors": { fileDescriptorProtos: fileDescriptorProtos() },
  } as unknown as PackageDefinition;
  return new ReflectionService(definition);
}
