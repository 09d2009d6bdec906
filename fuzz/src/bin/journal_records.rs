//! Fuzzing target `journal_records` for cargo-afl (see `routewarden_fuzz::run`).

fn main() {
    afl::fuzz!(|data: &[u8]| routewarden_fuzz::run("journal_records", data));
}
