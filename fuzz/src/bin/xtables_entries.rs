//! Fuzzing target `xtables_entries` for cargo-afl (see `routewarden_fuzz::run`).

fn main() {
    afl::fuzz!(|data: &[u8]| routewarden_fuzz::run("xtables_entries", data));
}
