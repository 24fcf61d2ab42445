# Sourced before `firebase emulators:*`. The Firestore emulator is a Java jar that firebase-tools
# normally downloads; offline machines (this project's CI) have it from Debian's package
# google-cloud-cli-firestore-emulator, without a Main-Class, so we wrap it. firebase-tools 15
# also refuses Java < 21 for it.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_java_major() { "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if [ "$(_java_major java 2>/dev/null || echo 0)" -lt 21 ] 2>/dev/null || ! command -v java >/dev/null; then
  for _j in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-21-jdk-amd64 /usr/lib/jvm/java-21-openjdk-amd64 /usr/lib/jvm/java-25-openjdk-amd64; do
    if [ -x "$_j/bin/java" ]; then export JAVA_HOME="$_j"; export PATH="$_j/bin:$PATH"; break; fi
  done
fi
if ! command -v java >/dev/null || [ "$(_java_major java)" -lt 21 ]; then
  echo "The Firestore emulator needs Java >= 21 (found: $(java -version 2>&1 | head -1)). Install a JDK 21+ and put it on PATH." >&2
  return 1 2>/dev/null || exit 1
fi
_jar=/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar
if [ -z "${FIRESTORE_EMULATOR_BINARY_PATH:-}" ] && [ -f "$_jar" ]; then
  _wrapper="$_root/.tools/firestore-emulator/wrapper.jar"
  if [ ! -f "$_wrapper" ]; then
    mkdir -p "$(dirname "$_wrapper")"
    printf 'Main-Class: com.google.cloud.datastore.emulator.firestore.CloudFirestore\nClass-Path: %s\n' "$_jar" >"$_wrapper.manifest"
    (cd "$(dirname "$_wrapper")" && jar cfm wrapper.jar wrapper.jar.manifest)
  fi
  export FIRESTORE_EMULATOR_BINARY_PATH="$_wrapper"
elif [ -z "${FIRESTORE_EMULATOR_BINARY_PATH:-}" ] && ! ls "$HOME/.cache/firebase/emulators/"cloud-firestore-emulator-* >/dev/null 2>&1; then
  echo "[emulators] no local Firestore emulator jar: firebase-tools will try to download it (needs internet)" >&2
fi
unset _root _jar _wrapper _j
