//! Fuzzing target `iptables_save` for cargo-afl (see `routewarden_fuzz::run`).

fn main() {
    afl::fuzz!(|data: &[u8]| routewarden_fuzz::run("iptables_save", data));
}
