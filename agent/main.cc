#include <cstdio>

int main() {
  std::puts("wattprobe: under construction");
  return 0;
}
