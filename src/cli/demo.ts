export async function runDemoCommand(_opts: { json?: boolean }): Promise<number> {
  console.log("demo: not built yet");
  return 1;
}
