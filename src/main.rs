fn main() {
    println!("weft");
}
