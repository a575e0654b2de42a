fn main() {
    println!("repairctl");
}
