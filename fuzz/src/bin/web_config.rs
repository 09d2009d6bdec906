//! Fuzzing target `web_config` for cargo-afl (see `routewarden_fuzz::run`).

fn main() {
    afl::fuzz!(|data: &[u8]| routewarden_fuzz::run("web_config", data));
}
