mod fixtures;

fn main() -> anyhow::Result<()> {
    Ok(())
}
